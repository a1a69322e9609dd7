"""The character domain: the catalogue of collectible characters and who owns which (domain.md §8).

It is the second step of the reward saga: scan's ``RewardGranted`` → an ownership row (unique per
user and character) → ``CharacterAcquired`` for a new row, or ``CharacterGrantRejected`` (unknown
character, deleted user) that the scan domain compensates. Database ``eco2_character``.
"""
