"""The my domain: the signed-in user's profile and owned-characters read model (domain.md §11.3).

It is the third step of the reward saga: character's ``CharacterAcquired`` → a ``user_characters``
row → ``ProfileUpdated`` (for notification). Profiles are filled from auth's ``UserRegistered`` /
``UserSignedIn`` and edited through ``/api/v1/users/me``. Database ``eco2_my``.
"""
