from django.urls import include, path

urlpatterns = [
    path("", include("channels1_kit.urls")),
]
