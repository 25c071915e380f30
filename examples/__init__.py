"""The seed systems (shared/seeds) run on beatkeeper, one folder each.

``BEATKEEPER_EXAMPLE=<name>`` selects one: its ``jobs`` module joins the task modules and its
``schedule.yaml`` joins the platform's schedule (``schedules.examples``). Nothing here is
imported unless an example is selected.
"""
