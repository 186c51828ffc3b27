"""nbgrader's file-system exchange with Unix permissions that keep every learner's work private.

nbgrader 0.9.6's default exchange relies on hard-to-guess names: the exchange root is world-writable, each
submission is a world-writable folder of world-readable files, any learner can drop a folder named after
another learner that ``nbgrader collect`` takes as theirs, and feedback files are world-readable. Here the
names stay the same (learners' ``nbgrader fetch_assignment/submit/fetch_feedback/list`` and the Assignments
tab work as before) and the permissions hold even for someone who knows every path:

* the exchange root is not writable by learners; the course folder belongs to the instructor and its group
  (``instructors``: the people who grade, never a learner);
* ``inbound/`` and ``feedback/`` are drop boxes (mode 3773: others may create entries but not list them; the
  sticky bit stops anyone but an entry's owner from renaming or deleting it; setgid gives every entry the
  instructors' group);
* a submission is prepared in a private staging folder and renamed into ``inbound/`` complete: folders 0750,
  files 0640, owned by the learner and readable by the instructors' group only;
* at submit the learner also creates a private feedback box (mode 0770, named after the submission's secret);
  ``release_feedback`` writes the feedback there and puts nbgrader's usual ``feedback/<hash>.html`` in place as
  a link to it, which only its learner (and the instructors) can follow;
* ``collect`` refuses (with an error naming it) any entry whose owner is not the learner it names, any
  submission that is or contains a symbolic link (a link to the instructor's solutions would be graded and
  handed back as feedback), anything but files and folders, or what the instructors cannot read, and any
  name without a readable time: nbgrader would stop collecting everyone's on the last three.

It needs one Unix account per learner (the name nbgrader uses as the student id), as JupyterHub's
LocalProcessSpawner or SystemdSpawner give. Configure it with :data:`FACTORY`
(``autograder/exchange_config.py.example``).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import secrets
import shutil
import stat
import tempfile
from datetime import datetime
from glob import glob

from nbgrader.exchange import default
from nbgrader.utils import notebook_hash

#: ``inbound/`` and ``feedback/``: setgid + sticky, rwx for the owner and the instructors' group, -wx for others.
DROP_BOX_MODE = 0o3773
#: The course folder and ``outbound/``: readable by all, writable by the instructor only.
PUBLIC_MODE = 0o2755
#: A submission's folders and files: the learner and the instructors' group read them, nobody else.
SUBMISSION_DIR_MODE, SUBMISSION_FILE_MODE = 0o750, 0o640
#: A learner's feedback box: the learner reads, the instructors' group writes.
FEEDBACK_BOX_MODE = 0o770
#: Feedback files inside a box (the box's mode is what keeps them private).
FEEDBACK_FILE_MODE = 0o644

#: ``ExchangeFactory`` settings for learners' servers and the instructor's course config alike.
FACTORY = {
    "exchange": "convcourse.exchange.Exchange",
    "fetch_assignment": "convcourse.exchange.FetchAssignment",
    "fetch_feedback": "convcourse.exchange.FetchFeedback",
    "list": "convcourse.exchange.List",
    "submit": "convcourse.exchange.Submit",
    "release_assignment": "convcourse.exchange.ReleaseAssignment",
    "release_feedback": "convcourse.exchange.ReleaseFeedback",
    "collect": "convcourse.exchange.Collect",
}


def feedback_box_name(submission_secret: str) -> str:
    """The name of a submission's feedback box: only someone who knows the submission's secret can name it."""
    return hashlib.sha256(f"convcourse feedback box\0{submission_secret}".encode()).hexdigest()


def owner_name(path: str) -> str:
    """The user name owning ``path`` itself (a link is not followed)."""
    uid = os.lstat(path).st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _is_drop_box(path: str) -> bool:
    mode = os.stat(path).st_mode
    return stat.S_IMODE(mode) & 0o7007 == DROP_BOX_MODE & 0o7007


class _Private:
    """The exchange root must exist and be closed to learners; nothing here makes it world-writable."""

    def ensure_root(self) -> None:
        if not os.path.isdir(self.root):
            self.fail(
                f"The exchange folder {self.root} does not exist. The administrator creates it once: "
                f"install -d -m 2755 -o INSTRUCTOR -g instructors {self.root}"
            )
        if os.stat(self.root).st_mode & stat.S_IWOTH:
            self.fail(
                f"The exchange folder {self.root} is writable by everyone, so any learner could move the course "
                f"folder aside and put their own in its place. The administrator fixes it: chmod o-w {self.root}"
            )

    def drop_box(self, name: str) -> str:
        """``<course>/<name>`` (inbound or feedback), checked to be a drop box that keeps entries private."""
        path = os.path.join(self.root, self.coursedir.course_id, name)
        if not os.path.isdir(path) or not _is_drop_box(path):
            self.fail(
                f"{path} is missing or not private (it must have mode {DROP_BOX_MODE:o}), so your work would not "
                f"be safe there. Ask your instructor to run `convcourse release LESSON --exchange` with the "
                f"private exchange configured."
            )
        return path


class Exchange(_Private, default.Exchange):
    """The exchange base class for ``ExchangeFactory.exchange``."""


class FetchAssignment(_Private, default.ExchangeFetchAssignment):
    """nbgrader's fetch_assignment, with the exchange root checked."""


class FetchFeedback(_Private, default.ExchangeFetchFeedback):
    """nbgrader's fetch_feedback: ``feedback/<hash>.html`` links into the learner's own box."""


class List(_Private, default.ExchangeList):
    """nbgrader's list, with the exchange root checked."""


class ReleaseAssignment(_Private, default.ExchangeReleaseAssignment):
    """nbgrader's release_assignment; also creates ``feedback/`` and sets the course folders' modes."""

    def init_dest(self) -> None:
        super().init_dest()
        feedback = os.path.join(self.course_path, "feedback")
        self.ensure_directory(feedback, DROP_BOX_MODE)
        instructors = os.stat(self.root).st_gid  # nbgrader's chmod drops setgid, so the group is not inherited
        for path, mode in (
            (self.course_path, PUBLIC_MODE),
            (self.outbound_path, PUBLIC_MODE),
            (self.inbound_path, DROP_BOX_MODE),
            (feedback, DROP_BOX_MODE),
        ):
            try:
                os.chown(path, -1, instructors)
            except PermissionError:
                self.fail(
                    f"Could not give {path} the exchange's group (gid {instructors}, the instructors' group): you "
                    f"must belong to it."
                )
            os.chmod(path, mode)
            if stat.S_IMODE(os.stat(path).st_mode) != mode:
                # Linux drops setgid when the owner is not in the folder's group.
                self.fail(
                    f"Could not set mode {mode:o} on {path}: you must belong to its group "
                    f"(gid {os.stat(path).st_gid}), the instructors' group."
                )


class Submit(_Private, default.ExchangeSubmit):
    """nbgrader's submit, made private: the submission appears in ``inbound/`` complete, readable by its learner
    and the instructors' group only, together with the learner's private feedback box."""

    def init_dest(self) -> None:
        super().init_dest()
        self.drop_box("inbound")
        self.feedback_path = self.drop_box("feedback")

    def copy_files(self) -> None:
        self.init_release()
        self.check_filename_diff()
        submission_secret = secrets.token_hex(64)
        dest_path = os.path.join(self.inbound_path, self.assignment_filename)
        self.log.info("Source: %s", self.src_path)
        self.log.info("Destination: %s", dest_path)

        staging = tempfile.mkdtemp(prefix=".submitting-", dir=self.inbound_path)  # 0700, group from setgid
        try:
            submission = os.path.join(staging, "submission")
            self.do_copy(self.src_path, submission)
            # Files made in the setgid staging folder get the instructors' group (the copy's own folder lost
            # its setgid bit when copytree gave it the source's mode); a rename keeps it.
            for name in self._write_stamps(staging, submission_secret):
                os.rename(os.path.join(staging, name), os.path.join(submission, name))
            self.set_perms(submission, fileperms=SUBMISSION_FILE_MODE, dirperms=SUBMISSION_DIR_MODE)
            self._check_group(submission, os.stat(self.inbound_path).st_gid)
            box = os.path.join(self.feedback_path, feedback_box_name(submission_secret))
            os.mkdir(box)
            os.chmod(box, FEEDBACK_BOX_MODE)
            os.rename(submission, dest_path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

        os.makedirs(self.cache, exist_ok=True)
        os.chmod(self.cache, 0o700)  # the cache holds the submission's secret; keep it even if $HOME is open
        cache_name = self.assignment_filename.rsplit("+", 1)[0] if self.add_random_string else self.assignment_filename
        cache_path = os.path.join(self.cache_path, cache_name)
        os.makedirs(self.cache_path, exist_ok=True)
        self.do_copy(self.src_path, cache_path)
        self._write_stamps(cache_path, submission_secret)
        self.log.info("Submitted as: %s %s %s", self.coursedir.course_id, self.coursedir.assignment_id, self.timestamp)

    def _write_stamps(self, folder: str, submission_secret: str) -> tuple[str, str]:
        stamps = {"timestamp.txt": self.timestamp, "submission_secret.txt": submission_secret}
        for name, text in stamps.items():
            with open(os.path.join(folder, name), "w") as fh:
                fh.write(text)
        return tuple(stamps)

    def _check_group(self, submission: str, gid: int) -> None:
        """Every file of the submission must belong to the instructors' group, or they could not collect it."""
        for folder, _, files in os.walk(submission):
            for path in [folder, *(os.path.join(folder, name) for name in files)]:
                if os.lstat(path).st_gid != gid:
                    self.fail(f"{path} did not get the instructors' group (gid {gid}); tell your instructor.")


class Collect(_Private, default.ExchangeCollect):
    """nbgrader's collect, refusing entries that are not their learner's own plain folder."""

    def _path_to_record(self, path: str) -> dict:
        try:
            record = super()._path_to_record(path)
            record["refused"] = self._refusal(path, record["username"])
        except ValueError:  # nbgrader itself would stop the whole collect here
            name = os.path.basename(path)
            refusal = "its name does not end in a submission time"
            record = {
                "username": name.rsplit("+", 3)[0],
                "filename": name,
                "timestamp": datetime.min,
                "refused": refusal,
            }
        if record["refused"]:
            self.log.error(
                "Not collected: %s claims to be %s's submission but %s.", path, record["username"], record["refused"]
            )
        return record

    @staticmethod
    def _refusal(path: str, username: str) -> str | None:
        """Why ``path`` is not ``username``'s own submission that the instructors can copy, or None."""
        if os.path.islink(path):
            return "it is a symbolic link"
        if not os.path.isdir(path):
            return "it is not a folder"
        owner = owner_name(path)
        if owner != username:
            return f"it belongs to {owner}"
        if not os.access(path, os.R_OK | os.X_OK):
            return "the instructors cannot read it"
        for folder, dirs, files in os.walk(path):
            for name in dirs + files:
                entry = os.path.join(folder, name)
                mode, where = os.lstat(entry).st_mode, os.path.relpath(entry, path)
                if stat.S_ISLNK(mode):
                    return f"it contains a symbolic link ({where})"
                if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                    return f"it contains something that is neither a file nor a folder ({where})"
                if not os.access(entry, os.R_OK | (os.X_OK if stat.S_ISDIR(mode) else 0)):
                    return f"the instructors cannot read {where}"
        return None

    def _sort_by_timestamp(self, records: list[dict]) -> list[dict]:
        """A learner's own submissions only, newest first (refused ones only when there is nothing else)."""
        return super()._sort_by_timestamp([r for r in records if not r["refused"]] or records)

    def copy_files(self) -> None:
        self.src_records = [r for r in self.src_records if not r["refused"]]
        super().copy_files()


class ReleaseFeedback(_Private, default.ExchangeReleaseFeedback):
    """nbgrader's release_feedback, writing each learner's feedback into their own box."""

    def copy_files(self) -> None:
        excluded = set(filter(None, self.coursedir.student_id_exclude.split(",")))
        pattern = re.escape(os.path.sep).join(
            [
                self.coursedir.format_path(
                    self.coursedir.feedback_directory, "(?P<student>[^/]+)", self.coursedir.assignment_id, escape=True
                ),
                r"(?P<notebook>[^/]+)\.html",
            ]
        )
        for html_file in sorted(glob(os.path.join(self.src_path, "*.html"))):
            match = re.fullmatch(pattern, html_file)
            if match is None:
                self.log.error("Not released: %s is not where nbgrader writes feedback.", html_file)
                continue
            if match["student"] in excluded:
                continue
            self._release(html_file, match["student"], match["notebook"])

    def _release(self, html_file: str, student: str, notebook: str) -> None:
        folder = os.path.dirname(html_file)
        with open(os.path.join(folder, "submission_secret.txt")) as fh:
            submission_secret = fh.read()
        box = os.path.join(self.dest_path, feedback_box_name(submission_secret))
        problem = None
        if not os.path.isdir(box) or os.path.islink(box):
            problem = "the submission has no feedback box (made before the private exchange? submit again)"
        elif owner_name(box) != student:
            problem = f"its feedback box {box} belongs to {owner_name(box)}"
        elif os.stat(box).st_mode & 0o007:
            problem = f"its feedback box {box} is open to others"
        elif not os.access(box, os.W_OK | os.X_OK):
            problem = f"the instructors cannot write into its feedback box {box}"
        else:
            try:
                self._write_feedback(
                    html_file, box, f"{notebook_hash(secret=submission_secret, notebook_id=notebook)}.html"
                )
            except OSError as error:  # the learner owns the box: whatever they did there stops only their own
                problem = str(error)
        if problem:
            self.log.error(
                "Feedback for %s on %s/%s not released: %s.", student, self.coursedir.assignment_id, notebook, problem
            )
        else:
            self.log.info("Released feedback for %s on %s/%s", student, self.coursedir.assignment_id, notebook)

    def _write_feedback(self, html_file: str, box: str, name: str) -> None:
        """Copy ``html_file`` to ``box/name`` and point ``feedback/name`` at it, each replaced in one step."""
        handle, staged = tempfile.mkstemp(dir=box, suffix=".html")
        try:
            with os.fdopen(handle, "wb") as out, open(html_file, "rb") as source:
                shutil.copyfileobj(source, out)
            os.chmod(staged, FEEDBACK_FILE_MODE)
            os.replace(staged, os.path.join(box, name))
        finally:
            if os.path.lexists(staged):
                os.unlink(staged)
        link = os.path.join(self.dest_path, name)
        staged_link = f"{link}.{secrets.token_hex(8)}"
        os.symlink(os.path.join(os.path.basename(box), name), staged_link)
        try:
            os.replace(staged_link, link)
        finally:
            if os.path.lexists(staged_link):
                os.unlink(staged_link)
