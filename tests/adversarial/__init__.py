"""Adversarial learner submissions for lesson 01, built by small factories from the released notebook."""
