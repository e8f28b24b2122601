"""zh-CN messages of the web console (`publisher.console`)."""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    "app.name": "政务信息多渠道发布",
    # navigation
    "nav.skip": "跳到正文",
    "nav.label": "主导航",
    "nav.items": "信息列表",
    "nav.compose": "新建信息",
    "nav.operations": "运行看板",
    "nav.deliveries": "投递记录",
    "nav.drift": "渠道核对",
    "nav.supervision": "督查",
    "nav.audit": "审计日志",
    "nav.password": "修改密码",
    "nav.logout": "退出登录",
    # roles: publisher/i18n/refusals.py
    # signing in
    "login.title": "登录",
    "login.username": "用户名",
    "login.password": "密码",
    "login.submit": "登录",
    "login.wrong": "用户名或密码错误。",
    "login.missing": "请填写用户名和密码。",
    "login.expired": "登录页面已过期，请重新输入后再登录。",
    "login.throttled": "登录尝试过于频繁，请 {seconds} 秒后再试。",
    # password
    "password.title": "修改密码",
    "password.current": "当前密码",
    "password.new": "新密码",
    "password.new_hint": "至少 {min} 个字符。",
    "password.again": "再次输入新密码",
    "password.submit": "修改密码",
    "password.done": "密码已修改。",
    "password.mismatch": "两次输入的新密码不一致。",
    "password.wrong_current": "当前密码不正确。",
    # errors
    "error.home": "返回首页",
    "error.403.title": "无权访问",
    "error.403.detail": (
        "您的账号无权查看或操作此页面的内容（例如其他部门的信息）。如需访问，请联系管理员。"
    ),
    "error.404.title": "页面不存在",
    "error.404.detail": "您要找的页面或记录不存在，可能已被删除。",
    "error.409.title": "操作冲突",
    "error.422.title": "输入有误",
    "error.413.title": "提交的内容过大",
    "error.413.detail": "一次提交不能超过 {mb} MB。请缩减正文或图片后重试。",
    "error.400.detail": "提交的表单无法读取：单个字段不能超过 1 MB，或表单格式有误。请缩减后重试。",
    "error.csrf.title": "表单已失效",
    "error.csrf.detail": "该表单已过期或不是从本系统提交的。请返回上一页，刷新后重试。",
    "error.other.title": "出错了",
}
