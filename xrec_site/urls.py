from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from xrec_site import views

admin.site.site_header = "xrec administration"
admin.site.site_title = "xrec admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # The OpenAPI schema and its Swagger UI, for staff accounts (SPECTACULAR_SETTINGS's
    # SERVE_PERMISSIONS). The split view serves Swagger UI's start-up script as a file of its
    # own, so the page needs no inline script under the Content-Security-Policy; a visitor
    # who is not signed in is sent to the login page rather than shown a bare 403.
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", login_required(SpectacularSwaggerSplitView.as_view(url_name="api_schema")), name="api_docs"),
    path("", include("recommendations.urls")),
    path("", include("explanations.urls")),
    path("", include("annotation.urls")),
]
