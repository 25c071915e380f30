"""What an operator does to a running platform, from the command line or the monitor's dashboard
(the same code for both): run an entry now, requeue a dead letter, resume a pipeline run."""
