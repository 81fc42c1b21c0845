# Django's Vietnamese formats, with thousands grouped as Vietnamese shoppers write them: 1.234,50
from django.conf.locale.vi.formats import *  # noqa: F403

NUMBER_GROUPING = 3
