"""nbgrader's configuration on the course's JupyterHub (autograder/jupyterhub_config.py.example puts this folder
on JUPYTER_CONFIG_PATH of every learner's server and of the instructors' service): the course id and the
exchange, so that the Assignments tab and the instructors' convcourse commands meet in one place."""

import os

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)
c.CourseDirectory.course_id = "conv2d-from-the-ground-up"  # = convcourse.grading.config.COURSE_ID
c.Exchange.root = os.environ.get("CONVCOURSE_EXCHANGE", "/srv/nbgrader/exchange")
# The course's private exchange (convcourse/exchange.py) where every learner has their own Unix account: the
# hub config sets this switch for learners' servers and the instructors' service alike.
if os.environ.get("CONVCOURSE_PRIVATE_EXCHANGE") == "1":
    from convcourse.exchange import FACTORY

    for step, exchange_class in FACTORY.items():
        setattr(c.ExchangeFactory, step, exchange_class)
# The learner id is the hub user name. nbgrader takes the Unix user's name (under DockerSpawner's "jovyan", the
# hub's JUPYTERHUB_USER); where every learner's server runs as the same Unix user (the trial hub's
# SimpleLocalProcessSpawner), the hub config sets this switch and the id is the hub user name.
if os.environ.get("CONVCOURSE_LEARNER_IS_HUB_USER") == "1":
    c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
