from sanic import Sanic

from common.database import register_database
from common.retention import register_purges
from common.service import create_app
from user_svc.accounts import ensure_admin
from user_svc.routes.addresses import addresses
from user_svc.routes.auth import auth
from user_svc.routes.keys import keys
from user_svc.routes.users import users
from user_svc.sessions import LoginThrottle, Sessions, login_throttle_purge, token_issuer
from user_svc.settings import UserSettings

NAME = "user_svc"


def create_user_app(settings: UserSettings) -> Sanic:
    issuer = token_issuer(settings)
    app = create_app(NAME, "User service", settings, token_verifier=issuer.verifier())
    app.ctx.token_issuer = issuer
    app.ctx.sessions = Sessions(issuer, LoginThrottle(settings))
    register_database(app, settings.database_url, NAME)
    if settings.consume_events:  # the background work: here, purging
        register_purges(app, NAME, [login_throttle_purge(settings.login_window_seconds)], settings.purge_interval)

    @app.before_server_start
    async def create_first_admin(app: Sanic) -> None:
        if settings.admin_email and settings.admin_password:
            await ensure_admin(settings.admin_email, settings.admin_password.get_secret_value())

    for blueprint in (auth, users, addresses, keys):
        app.blueprint(blueprint)
    return app
