"""Plain Django views; through daphne they run in a worker, as http.request messages."""

import os

from django.contrib.auth import authenticate, login
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


def hello(request):
    return JsonResponse({"worker": os.getpid(), "user": request.user.username})


# The test site has no forms or pages to carry a CSRF token; only the tests post here.
@csrf_exempt
@require_POST
def login_view(request):
    user = authenticate(request, username=request.POST.get("username"), password=request.POST.get("password"))
    if user is None:
        return HttpResponse("wrong username or password", status=403)
    login(request, user)
    return JsonResponse({"user": user.username})
