"""The kit's endpoints: `path("", include("channels1_kit.urls"))` in the site's URLconf gives

* healthz: 200 when the process reaches its database (daphne answers 503 itself while Redis
  cannot be used, at CHANNELS1_KIT_HEALTHZ_PATH, which should be where this one is mounted);
* ops/channels: the channel report as JSON (bearer token or staff login).
"""

from django.urls import path

from channels1_kit import views

app_name = "channels1_kit"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("ops/channels", views.ops_channels, name="ops-channels"),
]
