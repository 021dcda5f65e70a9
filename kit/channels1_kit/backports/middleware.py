"""Request limits that Django 2.2 lacks (CVE-2023-23969)."""

from django.conf import settings


class RequestLimitsMiddleware:
    """Drops an Accept-Language header longer than ACCEPT_LANGUAGE_HEADER_MAX_LENGTH.

    Django 2.2 parses the header with a regular expression whose cost grows with its
    length (CVE-2023-23969); the fixed Django versions ignore what is past 500 characters.
    No browser sends that much, so the request goes on as if it had sent none.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = request.META.get("HTTP_ACCEPT_LANGUAGE")
        limit = getattr(settings, "ACCEPT_LANGUAGE_HEADER_MAX_LENGTH", 500)
        if language is not None and len(language) > limit:
            del request.META["HTTP_ACCEPT_LANGUAGE"]
        return self.get_response(request)
