"""Scheduler service: SchedulerService, delayed jobs, retries, cron."""
