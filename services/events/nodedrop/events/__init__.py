"""Events service: EventService streams with replay and live tail."""
