"""The one locale table: every user-visible string, in English and 简体中文.

Labels and help of config fields live with their declarations in config.py and are reached
here as `field.<name>` and `field.<name>.info`, so each knob's text is written once."""
from __future__ import annotations

LANGUAGES = {"en": "English", "zh": "简体中文"}

STRINGS: dict[str, dict[str, str]] = {
    # ---- page ----
    "app.title": {"en": "## Workbench · fine-tune language models", "zh": "## Workbench · 语言模型微调工作台"},
    "tab.train": {"en": "Train", "zh": "训练"},
    "tab.data": {"en": "Data", "zh": "数据"},
    "tab.chat": {"en": "Chat", "zh": "对话"},
    "tab.export": {"en": "Export", "zh": "导出"},
    # ---- train tab ----
    "train.lora": {"en": "LoRA options", "zh": "LoRA 选项"},
    "train.method_options": {"en": "Method and preference options", "zh": "方法与偏好选项"},
    "train.advanced": {"en": "Advanced: optimizer, schedule, data, system", "zh": "高级：优化器、调度、数据、系统"},
    "train.preview": {"en": "Preview config and command", "zh": "预览配置与命令"},
    "train.start": {"en": "Start", "zh": "开始"},
    "train.abort": {"en": "Abort", "zh": "中止"},
    "train.resume": {"en": "Resume", "zh": "继续训练"},
    "train.command": {"en": "The config this run will use", "zh": "本次训练将使用的配置"},
    "train.command_comment": {"en": "Save as run.yaml and run without the browser:",
                              "zh": "保存为 run.yaml，即可脱离浏览器运行："},
    "train.run": {"en": "Run", "zh": "训练任务"},
    "train.run.info": {"en": "Pick any run to see its progress, chart and log.",
                       "zh": "选择任一任务，查看其进度、曲线和日志。"},
    "train.refresh": {"en": "Refresh", "zh": "刷新"},
    "train.loss_chart": {"en": "Loss", "zh": "损失"},
    "train.lr_chart": {"en": "Learning rate", "zh": "学习率"},
    "train.log": {"en": "Log (tail)", "zh": "日志（末尾）"},
    "train.runs": {"en": "All runs", "zh": "全部任务"},
    "train.started": {"en": "Started run **{run}**.", "zh": "已开始任务 **{run}**。"},
    "train.queued": {"en": "Queued run **{run}**: it starts when the current run ends.",
                     "zh": "任务 **{run}** 已排队：当前任务结束后自动开始。"},
    "train.resumed": {"en": "Run **{run}** queued to resume from its last complete checkpoint.",
                      "zh": "任务 **{run}** 已排队，将从最后一个完整检查点继续。"},
    "train.pick_run": {"en": "Pick a run first.", "zh": "请先选择一个任务。"},
    "train.bad_config": {"en": "The config cannot run:", "zh": "配置有误，无法运行："},
    "train.no_run": {"en": "No run selected. Press Start, or pick a run above.",
                     "zh": "未选择任务。点击“开始”，或在上方选择一个任务。"},
    "train.step": {"en": "step", "zh": "步"},
    "train.eta": {"en": "ETA", "zh": "预计剩余"},
    "train.tokens_per_second": {"en": "tokens/s", "zh": "token/秒"},
    "phase.queued": {"en": "waiting in the queue", "zh": "排队中"},
    "phase.preparing_data": {"en": "preparing data", "zh": "准备数据"},
    "phase.loading_model": {"en": "loading the model", "zh": "加载模型"},
    "phase.training": {"en": "training", "zh": "训练中"},
    "phase.saving": {"en": "saving the result", "zh": "保存结果"},
    "phase.done": {"en": "done", "zh": "完成"},
    "status.queued": {"en": "Queued", "zh": "排队中"},
    "status.running": {"en": "Running", "zh": "运行中"},
    "status.stopping": {"en": "Stopping", "zh": "正在停止"},
    "status.finished": {"en": "Finished", "zh": "已完成"},
    "status.failed": {"en": "Failed", "zh": "失败"},
    "status.aborted": {"en": "Aborted", "zh": "已中止"},
    "status.interrupted": {"en": "Interrupted", "zh": "已中断"},
    "runs.run": {"en": "Run", "zh": "任务"},
    "runs.status": {"en": "Status", "zh": "状态"},
    "runs.method": {"en": "Stage/method", "zh": "阶段/方法"},
    "runs.dataset": {"en": "Dataset", "zh": "数据集"},
    "runs.steps": {"en": "Steps", "zh": "步数"},
    "runs.loss": {"en": "Last loss", "zh": "最新损失"},
    "runs.duration": {"en": "Duration", "zh": "耗时"},
    # ---- data tab ----
    "data.dataset": {"en": "Dataset", "zh": "数据集"},
    "data.show": {"en": "Show what will be trained", "zh": "查看训练内容"},
    "data.rows": {"en": "Rows (normalized)", "zh": "数据行（规范化后）"},
    "data.histogram": {"en": "Tokens per example", "zh": "每个样本的 token 数"},
    "data.row": {"en": "Example", "zh": "样本"},
    "data.trained_text": {"en": "Exact training text (green = tokens that carry loss)",
                          "zh": "实际训练文本（绿色 = 计算损失的 token）"},
    "data.summary": {
        "en": "**{kind}** rows · train {train} · validation {validation} · test {test} · {tokens} tokens "
              "({trainable} carry loss) · longest {max}, mean {mean} · {truncated} truncated at cutoff "
              "{cutoff}, {dropped} dropped",
        "zh": "**{kind}** 类数据 · 训练 {train} · 验证 {validation} · 测试 {test} · 共 {tokens} 个 token"
              "（其中 {trainable} 个计算损失）· 最长 {max}，平均 {mean} · 截断长度 {cutoff} 下截断 "
              "{truncated} 行，丢弃 {dropped} 行"},
    # ---- chat tab ----
    "chat.left": {"en": "Model A", "zh": "模型 A"},
    "chat.right": {"en": "Model B", "zh": "模型 B"},
    "chat.compare": {"en": "Compare side by side", "zh": "并排对比"},
    "chat.quantization": {"en": "Quantization", "zh": "量化"},
    "chat.quantization.info": {"en": "'run' uses the run's own setting", "zh": "run 表示沿用训练时的设置"},
    "chat.refresh": {"en": "Refresh models", "zh": "刷新模型列表"},
    "chat.pane_a": {"en": "A", "zh": "A"},
    "chat.pane_b": {"en": "B", "zh": "B"},
    "chat.prompt": {"en": "Message", "zh": "消息"},
    "chat.send": {"en": "Send", "zh": "发送"},
    "chat.stop": {"en": "Stop", "zh": "停止"},
    "chat.regenerate": {"en": "Regenerate", "zh": "重新生成"},
    "chat.clear": {"en": "Clear", "zh": "清空"},
    "chat.export": {"en": "Export conversation (JSON)", "zh": "导出对话（JSON）"},
    "chat.settings": {"en": "Generation settings", "zh": "生成设置"},
    "chat.system": {"en": "System prompt", "zh": "系统提示词"},
    "chat.max_new_tokens": {"en": "Max new tokens", "zh": "最大生成 token 数"},
    "chat.temperature": {"en": "Temperature (0 = greedy)", "zh": "温度（0 表示贪心）"},
    "chat.top_p": {"en": "Top-p", "zh": "Top-p"},
    "chat.top_k": {"en": "Top-k", "zh": "Top-k"},
    "chat.repetition_penalty": {"en": "Repetition penalty", "zh": "重复惩罚"},
    "chat.seed": {"en": "Seed", "zh": "随机种子"},
    "chat.loading": {"en": "loading the model…", "zh": "正在加载模型…"},
    # ---- export tab ----
    "export.run": {"en": "Run", "zh": "训练任务"},
    "export.kind": {"en": "What to export", "zh": "导出内容"},
    "export.kind.info": {"en": "merged: adapter merged into the base · adapter: the adapter alone · "
                                "bnb: merged and quantized with bitsandbytes · gguf: one file for llama.cpp/Ollama",
                         "zh": "merged：适配器合并进基座 · adapter：仅适配器 · bnb：合并后用 bitsandbytes 量化 · "
                               "gguf：供 llama.cpp/Ollama 使用的单个文件"},
    "export.dtype": {"en": "Data type (merged)", "zh": "数据类型（合并）"},
    "export.shard": {"en": "Largest weight file", "zh": "单个权重文件上限"},
    "export.quantize": {"en": "bitsandbytes bits", "zh": "bitsandbytes 位数"},
    "export.gguf": {"en": "GGUF type", "zh": "GGUF 类型"},
    "export.refresh": {"en": "Refresh", "zh": "刷新"},
    "export.merge": {"en": "Start export", "zh": "开始导出（合并/打包）"},
    "export.cancel": {"en": "Cancel export", "zh": "取消导出"},
    "export.download_merged": {"en": "Download the finished export", "zh": "下载刚完成的导出"},
    "export.list_title": {"en": "### Exports of this run", "zh": "### 该任务的导出"},
    "export.none": {"en": "No exports yet.", "zh": "还没有导出。"},
    "export.col_name": {"en": "Name", "zh": "名称"},
    "export.col_kind": {"en": "Kind", "zh": "类型"},
    "export.col_size": {"en": "Size", "zh": "大小"},
    "export.col_download": {"en": "Download", "zh": "下载"},
    "export.delete_name": {"en": "Export to delete", "zh": "要删除的导出"},
    "export.delete": {"en": "Delete", "zh": "删除"},
    "export.deleted": {"en": "Deleted {name}.", "zh": "已删除 {name}。"},
    "export.pick_run": {"en": "Pick a finished run first.", "zh": "请先选择一个已完成的任务。"},
    "export.pick_export": {"en": "Pick an export to delete first.", "zh": "请先选择要删除的导出。"},
    "export.started": {"en": "Export ({kind}) started; it runs in the background.",
                       "zh": "导出（{kind}）已开始，在后台运行。"},
    "export.cancelled": {"en": "Export cancelled; nothing half-written is kept.",
                         "zh": "导出已取消，不会留下写了一半的文件。"},
    "export.state_running": {"en": "running", "zh": "进行中"},
    "export.state_done": {"en": "done", "zh": "完成"},
    "export.state_error": {"en": "failed", "zh": "失败"},
    "export.state_cancelled": {"en": "cancelled", "zh": "已取消"},
}


def _field_text(key: str, lang: str) -> str | None:
    from .config import FIELDS

    parts = key.split(".")
    if len(parts) not in (2, 3) or parts[1] not in FIELDS:
        return None
    meta = FIELDS[parts[1]].metadata
    text = meta["help"] if len(parts) == 3 and parts[2] == "info" else meta["label"] if len(parts) == 2 else None
    return text.get(lang, text["en"]) if text else None


def t_optional(key: str, lang: str = "en", **fmt) -> str | None:
    if key.startswith("field."):
        text = _field_text(key, lang)
    else:
        entry = STRINGS.get(key)
        text = (entry.get(lang) or entry.get("en")) if entry else None
    if text is None:
        return None
    return text.format(**fmt) if fmt else text


def t(key: str, lang: str = "en", **fmt) -> str:
    """The string for `key` in `lang`; an unknown key shows as itself (and fails the tests)."""
    text = t_optional(key, lang, **fmt)
    return key if text is None else text
