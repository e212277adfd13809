"""`/`: a plain, honest page listing the projects, until the app is served here."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from server.api import state_of

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>阳光交易 Sunbid · 公共资源交易公开</title>
<style>
body{{font:16px/1.5 system-ui,sans-serif;margin:0 auto;max-width:48rem;padding:1rem}}
li{{margin:.6rem 0}} small{{color:#555}} code{{background:#eee;padding:0 .2rem}}
</style></head><body>
<h1>公共资源交易公开 <small>Sunbid</small></h1>
<p>最新动态在前。实时订阅：<code>/ws</code> 或 <code>/api/stream</code>；接口说明：
<a href="/api/openapi.json">/api/openapi.json</a>。</p>
<ol>{items}</ol>
</body></html>"""


async def home(request: Request) -> Response:
    state = state_of(request)
    projects, _ = await state.store.list_projects({}, None, None, 100)
    categories = state.domain.categories
    stages = state.domain.stages
    items = "".join(
        f'<li><a href="/api/projects/{escape(p["id"])}">{escape(p["title"])}</a><br>'
        f"<small>{escape(categories[p['category']].zh)} · "
        f"{escape(stages[p['stage']].zh if p['stage'] in stages else '未发布')} · "
        f"{escape(p['agency'])} · {escape(p['updated_at'])}</small></li>"
        for p in projects
    )
    return HTMLResponse(PAGE.format(items=items or "<li>暂无项目</li>"))
