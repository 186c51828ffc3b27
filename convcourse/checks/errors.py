"""The one exception a failed check raises."""


class GradingError(AssertionError):
    """A failed check: the message is written for the learner."""
