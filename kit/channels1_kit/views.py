"""The kit's HTTP endpoints, mounted by a site with `path("", include("channels1_kit.urls"))`."""

import hmac

from django.db import connection
from django.http import JsonResponse

from channels1_kit import monitoring
from channels1_kit.conf import setting


def healthz(request):
    """For load balancers: answers 200 when this process can reach its database.

    Through gunicorn it checks gunicorn and the database. Asked of a daphne directly
    (http://$DAPHNE_BIND/healthz) it runs in a worker, as an http.request message, so the
    answer also proves that daphne, the channel layer and a worker are serving; while Redis
    cannot be used, daphne answers 503 itself (channels1_kit/interface.py).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def _bearer_token_valid(request) -> bool:
    token = setting("MONITORING_TOKEN")
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def ops_channels(request):
    """The channel report (channels1_kit/monitoring.py) as JSON, for a monitoring system or an autoscaler.

    Readable with `Authorization: Bearer $CHANNELS1_KIT_MONITORING_TOKEN`, or by a staff login.
    It waits `interval` seconds (default 1, at most 10) to measure rates.
    """
    user = getattr(request, "user", None)
    if not (_bearer_token_valid(request) or (user is not None and user.is_staff)):
        response = JsonResponse({"error": "unauthorized"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="ops"'
        return response
    try:
        report = monitoring.channel_report(interval=float(request.GET.get("interval", 1.0)))
    except ValueError as error:
        return JsonResponse({"error": "invalid-interval", "message": str(error)}, status=400)
    response = JsonResponse(report)
    response["Cache-Control"] = "no-store"
    return response
