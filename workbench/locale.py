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
    "export.dtype": {"en": "Data type", "zh": "数据类型"},
    "export.refresh": {"en": "Refresh", "zh": "刷新"},
    "export.merge": {"en": "Merge LoRA into the base and package", "zh": "合并 LoRA 到基座并打包"},
    "export.adapter": {"en": "Package the adapter alone", "zh": "单独打包适配器"},
    "export.download_merged": {"en": "Download merged model (zip)", "zh": "下载合并后的模型（zip）"},
    "export.download_adapter": {"en": "Download adapter (zip)", "zh": "下载适配器（zip）"},
    "export.pick_run": {"en": "Pick a finished run first.", "zh": "请先选择一个已完成的任务。"},
    "export.merging": {"en": "merging", "zh": "正在合并"},
    "export.merged_done": {"en": "Merged model saved in `{folder}` ({size} MB zip).",
                           "zh": "合并后的模型已保存到 `{folder}`（zip 共 {size} MB）。"},
    "export.adapter_done": {"en": "Adapter saved in `{folder}`.", "zh": "适配器已保存到 `{folder}`。"},
    # ---- evaluate and experiments tabs (issue 8) ----
    "tab.evaluate": {"en": "Evaluate", "zh": "评估"},
    "tab.experiments": {"en": "Experiments", "zh": "实验对比"},
    "eval.target": {"en": "Model", "zh": "模型"},
    "eval.target.info": {"en": "The base, a run (its final result) or one of its checkpoints.",
                         "zh": "基座模型、某个任务（最终结果）或它的检查点。"},
    "eval.dataset": {"en": "Dataset", "zh": "数据集"},
    "eval.dataset.info": {"en": "Empty = the run's own dataset and held-out split.",
                          "zh": "留空表示使用该任务自己的数据集与留出划分。"},
    "eval.split": {"en": "Split", "zh": "数据划分"},
    "eval.limit": {"en": "Rows (0 = all)", "zh": "行数（0 表示全部）"},
    "eval.refresh": {"en": "Refresh", "zh": "刷新"},
    "eval.run": {"en": "Evaluate", "zh": "评估"},
    "eval.compare": {"en": "Before / after (base vs tuned)", "zh": "调优前后对比（基座 vs 微调）"},
    "eval.gap": {"en": "Gap analysis (base, before training)", "zh": "差距分析（基座，训练前）"},
    "eval.table": {"en": "Rows", "zh": "逐行结果"},
    "eval.running": {"en": "evaluating", "zh": "正在评估"},
    "eval.need_run": {"en": "Pick a tuned run or checkpoint for before / after.",
                      "zh": "调优前后对比需要选择一个微调任务或检查点。"},
    "eval.need_dataset": {"en": "Pick a dataset for the base model.", "zh": "请为基座模型选择数据集。"},
    "eval.metrics": {"en": "**{target}** on {dataset}/{split} ({rows} rows): {metrics}",
                     "zh": "**{target}** 在 {dataset}/{split} 上（{rows} 行）：{metrics}"},
    "eval.compare_summary": {
        "en": "**{target}** vs **{base}** on {dataset}/{split} ({rows} rows): **{improved} improved**, "
              "**{worse} got worse**.",
        "zh": "**{target}** 对比 **{base}**，{dataset}/{split}（{rows} 行）：**{improved} 行变好**，"
              "**{worse} 行变差**。"},
    "eval.metric_change": {"en": "Metric change", "zh": "指标变化"},
    "eval.forgetting": {
        "en": "Forgetting check: general-text perplexity {before:.2f} → {after:.2f} ({change:+.1f}%, threshold {threshold:.0f}%).",
        "zh": "遗忘检查：通用文本困惑度 {before:.2f} → {after:.2f}（{change:+.1f}%，阈值 {threshold:.0f}%）。"},
    "eval.forgetting_warning": {
        "en": "⚠️ The tuned model lost more general ability than the threshold allows: train fewer "
              "steps, lower the learning rate, or mix in general data.",
        "zh": "⚠️ 微调后的模型通用能力下降超过阈值：可减少训练步数、降低学习率，或混入通用数据。"},
    "eval.forgetting_ok": {"en": "✅ Within the threshold.", "zh": "✅ 在阈值之内。"},
    "eval.gap_summary": {
        "en": "The base **{target}** gets **{failed} of {rows}** {split} rows of {dataset} wrong "
              "(exact match {em:.2f}). The table lists what tuning must fix.",
        "zh": "基座 **{target}** 在 {dataset} 的 {split} 划分上答错 **{failed}/{rows}** 行"
              "（完全匹配 {em:.2f}）。下表列出微调需要解决的问题。"},
    "eval.col.prompt": {"en": "Prompt", "zh": "提示"},
    "eval.col.reference": {"en": "Reference", "zh": "参考答案"},
    "eval.col.prediction": {"en": "Output", "zh": "输出"},
    "eval.col.base": {"en": "Base", "zh": "基座"},
    "eval.col.tuned": {"en": "Tuned", "zh": "微调后"},
    "eval.col.change": {"en": "Change", "zh": "变化"},
    "eval.col.exact": {"en": "Exact", "zh": "完全匹配"},
    "eval.change.improved": {"en": "improved", "zh": "变好"},
    "eval.change.worse": {"en": "got worse", "zh": "变差"},
    "eval.change.same": {"en": "same", "zh": "不变"},
    "exp.runs": {"en": "Runs to compare", "zh": "要对比的任务"},
    "exp.show": {"en": "Compare", "zh": "对比"},
    "exp.loss": {"en": "Loss curves", "zh": "损失曲线"},
    "exp.metrics": {"en": "Evaluation metrics (saved evaluations of each run)", "zh": "评估指标（各任务已保存的评估）"},
    "exp.config": {"en": "Config differences", "zh": "配置差异"},
    "exp.none": {"en": "Pick one or more runs.", "zh": "请选择一个或多个任务。"},
    "exp.gallery": {"en": "Sample gallery: the same prompts at every saved checkpoint",
                    "zh": "样例画廊：每个已保存检查点对同一组提示的回答"},
    "exp.gallery_run": {"en": "Run", "zh": "任务"},
    "exp.gallery_prompts": {"en": "Prompts (one per line)", "zh": "提示（每行一个）"},
    "exp.gallery_prompts.info": {"en": "Empty = the first prompts of the run's test split.",
                                 "zh": "留空表示使用该任务测试集的前几个提示。"},
    "exp.gallery_build": {"en": "Generate at every checkpoint", "zh": "在每个检查点上生成"},
    "exp.gallery_table": {"en": "Answers by checkpoint", "zh": "各检查点的回答"},
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
