"""The dashboard at `/`: server-rendered pages (Jinja2, autoescaped) with a little vanilla JavaScript, no
front-end build step. See `rarewatch.dashboard.views` for the pages and how they are authorised."""

from rarewatch.dashboard.views import add_routes

__all__ = ["add_routes"]
