from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("", include("pages.urls")),
    # healthz and ops/channels (channels1_kit/urls.py).
    path("", include("channels1_kit.urls")),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("liveblog/", include("liveblog.urls")),
    path("chat/", include("chat.urls")),
]
