"""Crisis-language lexicons, one module per language (data only; see moderation/crisis.py).

Each module defines LANG, LEXICON (category -> patterns; a leading ``!`` marks a high-level
entry in a low category), HYPERBOLE (phrases that suppress an overlapping match), NEGATORS,
FIRST_PERSON, THIRD_PERSON and SPEECH (words deciding whose words a phrase is), PAST and NOW
(past/recovery framing and what cancels it), CLAUSE_BREAKS and STOPWORDS (language guess).
Written for Hearthside from common usage, safe-messaging guidance and moderators' experience;
no third-party lexicon is copied.
"""
