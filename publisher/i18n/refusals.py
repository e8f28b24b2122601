"""zh-CN refusals: what staff read when an action is refused (`NotFound`, `Conflict`,
`Forbidden`: the `zh` the raise site builds with `t("refusal.…")`), and the names of roles
and item states they mention."""

from __future__ import annotations

from collections.abc import Iterable

from publisher.i18n.fill import fill

MESSAGES: dict[str, str] = {
    "role.admin": "管理员",
    "role.editor": "编辑",
    "role.reviewer": "审核人",
    "role.operator": "运维人员",
    "role.supervisor": "督查人员",
    "item_status.draft": "草稿",
    "item_status.submitted": "已送审",
    "item_status.approved": "已通过审核",
    "item_status.published": "已发布",
    "item_status.retracted": "已撤回",
    "refusal.bootstrap_only": (
        "引导令牌（PUBLISHER_BOOTSTRAP_TOKEN）只能用来创建第一个管理员：以 admin 角色调用 "
        "POST /api/v1/users"
    ),
    "refusal.admin_exists": "已有管理员，引导令牌不再有效",
    "refusal.role": "此操作需要{needed}角色，您的角色是{role}",
    "refusal.department": "这条信息属于部门 {department}，您的账号只能处理{scope}的信息",
    "refusal.no_department": "任何部门",
    "refusal.no_user": "没有名为“{name}”的用户",
    "refusal.user_disabled": "用户“{name}”已停用",
    "refusal.no_token": "令牌 {id} 不存在",
    "refusal.token_not_yours": "令牌 {id} 不是您的，只有其本人或管理员可以吊销",
    "refusal.freeze_exists": "发布冻结已在进行中，请先解除",
    "refusal.no_freeze": "当前没有发布冻结",
    "refusal.no_item": "信息 {id} 不存在",
    "refusal.no_revision": "信息 {id} 还没有任何版本",
    "refusal.no_delivery": "投递 {id} 不存在",
    "refusal.no_domain": "领域“{code}”不存在",
    "refusal.no_channel": "渠道“{kind}”不存在，可选：{choices}",
    "refusal.no_drift": "偏差记录 {id} 不存在",
    "refusal.no_word": "“{word}”不在敏感词表中",
    "refusal.retracted_submit": "信息 {id} 已撤回，请重新发布",
    "refusal.already_submitted": "信息 {id} 已送审（第{revision}版）",
    "refusal.published_as_approved": "信息 {id} 已按审核通过的版本发布，修改后才能再次送审",
    "refusal.no_review_stages": "“{domain}”领域没有审核环节，可直接发布",
    "refusal.all_approved": "信息 {id} 的各审核环节都已通过",
    "refusal.not_submitted": "信息 {id} 未送审（第{revision}版）",
    "refusal.own_item": "不能审核自己撰写的信息",
    "refusal.two_stages": "您已通过本版本的{stage}，同一人不能审核两个环节",
    "refusal.not_under_review": "信息 {id} 不在审核中，无需退回",
    "refusal.urgent_needs_reviewer": "紧急发布只能由审核人执行，尚缺：{missing}",
    "refusal.not_approved": "发布前须通过全部审核环节，尚缺：{missing}",
    "refusal.domain_after_submit": "送审后更改领域须由审核人决定",
    "refusal.after_approval": "审核通过后修改 {fields} 须由审核人决定",
    "refusal.urgent_by_reviewer": "该领域没有审核环节，标记紧急（冻结期间照常发布）须由审核人决定",
    "refusal.reviewer_fields": (
        "审核人只能修改 urgent、push、channels、domain；{fields} 请退回编辑修改"
    ),
    "refusal.no_blocking_finding": "信息 {id} 第{revision}版没有需要放行的检查结果",
    "refusal.nothing_to_mask": "信息 {id} 没有需要遮盖的个人信息",
    "refusal.mask_changed_nothing": "信息 {id} 遮盖后没有变化",
    "refusal.retracted_edit": "信息 {id} 已撤回，请先重新发布再修改",
    "refusal.not_published": "信息 {id} {status}，未发布，无需撤回",
    "refusal.drift_resolved": "偏差记录 {id} 已于 {at} 处理",
    "refusal.drift_moved_on": "投递 {id} 现在{state}，下次检查时再判断",
    "refusal.nothing_to_retry": "投递 {id} {state}，无需重试",
    "refusal.withdrawal_cancel": "投递 {id} 是从{channel}撤回：撤回不能取消，可重试或暂停该渠道",
    "refusal.cannot_cancel": "投递 {id} {state}，不能取消",
    "refusal.cannot_lookup": "{channel}无法查询已发内容，请用 mark-posted 并写明理由",
    "refusal.lookup_failed": (
        "暂无法向{channel}核实编号 {remote_id}，请稍后再试，或用 mark-posted 并写明理由"
    ),
    "refusal.no_such_post": "{channel}上查无本条信息的 {remote_id}",
    "refusal.other_post": "{channel}上本条信息的编号是 {found}，不是 {remote_id}",
    "refusal.adopt_withdrawal": "投递 {id} 正在撤回，没有可认领的内容",
    "refusal.adopt_state": "投递 {id} {state}，只有待核实或失败的投递可以认领",
    "refusal.adopt_moved_on": "向渠道核实期间投递 {id} 已有变化（现在{state}），请重新查看",
    "refusal.secret_key_missing": (
        "未设置 PUBLISHER_SECRET_KEY，渠道令牌只能加密保存：请为每个进程设置32字节随机密钥"
        "（urlsafe base64），重启后再提交令牌"
    ),
}


def role_name(role: str) -> str:
    return MESSAGES.get(f"role.{role}", role)


def item_status_name(status: str) -> str:
    return MESSAGES.get(f"item_status.{status}", status)


def department_refusal(department: str, scope: Iterable[str]) -> str:
    """An item of `department` is outside the caller's departments `scope`."""
    shown = "、".join(scope) or fill(MESSAGES, "refusal.no_department")
    return fill(MESSAGES, "refusal.department", department=department, scope=shown)


__all__ = ["MESSAGES", "department_refusal", "item_status_name", "role_name"]
