from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from xrec_site import views

admin.site.site_header = "xrec administration"
admin.site.site_title = "xrec admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("recommendations.urls")),
    path("", include("explanations.urls")),
    path("", include("annotation.urls")),
]
