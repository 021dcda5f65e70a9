from django.apps import AppConfig


class LiveblogConfig(AppConfig):
    name = "liveblog"
