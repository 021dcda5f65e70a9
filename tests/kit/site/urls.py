from django.urls import path

from tests.kit.site.echo import views

urlpatterns = [
    path("hello/", views.hello),
    path("login/", views.login_view),
]
