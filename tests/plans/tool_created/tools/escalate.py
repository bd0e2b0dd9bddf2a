def escalate_ticket(ticket_id: str) -> str:
    """Escalate a support ticket to a supervisor.

    Args:
        ticket_id: The ticket's id.

    Returns:
        str: who it was escalated to
    """
    return "supervisor"
