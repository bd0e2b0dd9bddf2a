def lookup_ticket(ticket_id: str) -> str:
    """Look up a support ticket.

    Args:
        ticket_id: The ticket's id, e.g. T-1234.

    Returns:
        str: the ticket's subject and status
    """
    return f"{ticket_id}: open"
