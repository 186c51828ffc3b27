"""Instructor tools at class scale: roster, release, collection, parallel autograding, feedback, export.

Every tool works on an nbgrader course root (``autograder/`` by default) and keeps nbgrader's gradebook
as the single record of grades. :mod:`.course` resolves the course settings; one module per concern.
"""
