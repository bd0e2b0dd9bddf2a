def lookup_ticket(ticket_id: str, include_history: bool = False) -> str:
    """Look up a support ticket.

    Args:
        ticket_id: The ticket's id, e.g. T-1234.
        include_history: Also return the ticket's past messages.

    Returns:
        str: the ticket's subject and status
    """
    status = f"{ticket_id}: open"
    return status + " (history: none)" if include_history else status
