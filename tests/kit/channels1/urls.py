import os

from django.http import JsonResponse
from django.urls import path


def hello(request):
    return JsonResponse({"hello": "page", "pid": os.getpid()})


urlpatterns = [path("hello/", hello)]
