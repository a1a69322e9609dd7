"""The chat domain: conversations (chats) and their messages, kept with their events in
``eco2_chat``, and served to the user (list, detail, rename, delete).

The chat pipeline (``pipelines/chat``) answers a posted message; it writes the user's message and
the assistant's answer through this domain's repository, in its own transactions, so the state
and the events of a conversation always come from one place.
"""
