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
    "train.rl_options": {
        "en": "Online RL options (grpo, rloo): rewards and sampling",
        "zh": "在线强化学习选项（grpo、rloo）：奖励与采样",
    },
    "train.rl_view": {
        "en": "Online RL (grpo, rloo): rewards and sampled answers",
        "zh": "在线强化学习（grpo、rloo）：奖励与采样回答",
    },
    "train.rl_chart": {
        "en": "Mean reward, reward spread, KL, completion length",
        "zh": "平均奖励、奖励标准差、KL、回答长度",
    },
    "train.rl_samples": {
        "en": "Sampled answers with their rewards (newest first)",
        "zh": "采样的回答及其奖励（最新在前）",
    },
    "train.rl_col_step": {"en": "step", "zh": "步"},
    "train.rl_col_reward": {"en": "reward", "zh": "奖励"},
    "train.rl_col_rewards": {"en": "each reward", "zh": "各项奖励"},
    "train.rl_col_prompt": {"en": "prompt", "zh": "提示"},
    "train.rl_col_completion": {"en": "answer", "zh": "回答"},
    "train.preview": {"en": "Preview config and command", "zh": "预览配置与命令"},
    "train.start": {"en": "Start", "zh": "开始"},
    "train.abort": {"en": "Abort", "zh": "中止"},
    "train.resume": {"en": "Resume", "zh": "继续训练"},
    "train.command": {"en": "The config this run will use", "zh": "本次训练将使用的配置"},
    "train.command_comment": {
        "en": "Save as run.yaml and run without the browser:",
        "zh": "保存为 run.yaml，即可脱离浏览器运行：",
    },
    "train.run": {"en": "Run", "zh": "训练任务"},
    "train.run.info": {
        "en": "Pick any run to see its progress, chart and log.",
        "zh": "选择任一任务，查看其进度、曲线和日志。",
    },
    "train.refresh": {"en": "Refresh", "zh": "刷新"},
    "train.loss_chart": {"en": "Loss", "zh": "损失"},
    "train.lr_chart": {"en": "Learning rate", "zh": "学习率"},
    "train.log": {"en": "Log (tail)", "zh": "日志（末尾）"},
    "train.runs": {"en": "All runs", "zh": "全部任务"},
    "train.started": {"en": "Started run **{run}**.", "zh": "已开始任务 **{run}**。"},
    "train.queued": {
        "en": "Queued run **{run}**: it starts when the current run ends.",
        "zh": "任务 **{run}** 已排队：当前任务结束后自动开始。",
    },
    "train.resumed": {
        "en": "Run **{run}** queued to resume from its last complete checkpoint.",
        "zh": "任务 **{run}** 已排队，将从最后一个完整检查点继续。",
    },
    "train.pick_run": {"en": "Pick a run first.", "zh": "请先选择一个任务。"},
    "train.bad_config": {"en": "The config cannot run:", "zh": "配置有误，无法运行："},
    "train.no_run": {
        "en": "No run selected. Press Start, or pick a run above.",
        "zh": "未选择任务。点击“开始”，或在上方选择一个任务。",
    },
    "train.step": {"en": "step", "zh": "步"},
    "train.eta": {"en": "ETA", "zh": "预计剩余"},
    "train.tokens_per_second": {"en": "tokens/s", "zh": "token/秒"},
    "phase.queued": {"en": "waiting in the queue", "zh": "排队中"},
    "phase.preparing_data": {"en": "preparing data", "zh": "准备数据"},
    "phase.loading_model": {"en": "loading the model", "zh": "加载模型"},
    "phase.training": {"en": "training", "zh": "训练中"},
    "phase.saving": {"en": "saving the result", "zh": "保存结果"},
    "phase.predicting": {"en": "predicting (do_predict)", "zh": "预测中（do_predict）"},
    "phase.done": {"en": "done", "zh": "完成"},
    "status.queued": {"en": "Queued", "zh": "排队中"},
    "status.running": {"en": "Running", "zh": "运行中"},
    "status.stopping": {"en": "Stopping", "zh": "正在停止"},
    "status.finished": {"en": "Finished", "zh": "已完成"},
    "status.failed": {"en": "Failed", "zh": "失败"},
    "status.aborted": {"en": "Aborted", "zh": "已中止"},
    "status.interrupted": {"en": "Interrupted", "zh": "已中断"},
    "status.damaged": {"en": "Damaged", "zh": "已损坏"},
    "runs.run": {"en": "Run", "zh": "任务"},
    "runs.status": {"en": "Status", "zh": "状态"},
    "runs.method": {"en": "Stage/method", "zh": "阶段/方法"},
    "runs.dataset": {"en": "Dataset", "zh": "数据集"},
    "runs.steps": {"en": "Steps", "zh": "步数"},
    "runs.loss": {"en": "Last loss", "zh": "最新损失"},
    "runs.duration": {"en": "Duration", "zh": "耗时"},
    "runs.best": {"en": "Best checkpoint", "zh": "最佳检查点"},
    "train.hardware": {"en": "Hardware of the training process", "zh": "训练进程的硬件占用"},
    "train.hw_percent": {"en": "Utilisation (%)", "zh": "利用率（%）"},
    "train.hw_memory": {"en": "Memory (MB)", "zh": "内存（MB）"},
    "train.hw_disk": {"en": "Free disk of the saves folder (GB)", "zh": "保存目录所在磁盘剩余空间（GB）"},
    "hw.cpu": {"en": "CPU (this run)", "zh": "CPU（本任务）"},
    "hw.system_cpu": {"en": "CPU (whole machine)", "zh": "CPU（整机）"},
    "hw.system_memory": {"en": "memory (whole machine)", "zh": "内存（整机）"},
    "hw.gpu_util": {"en": "GPU", "zh": "GPU 利用率"},
    "hw.process_memory": {"en": "this run", "zh": "本任务"},
    "hw.gpu_memory": {"en": "GPU memory", "zh": "显存"},
    "hw.disk_free": {"en": "free", "zh": "剩余"},
    # ---- data tab ----
    "data.dataset": {"en": "Dataset", "zh": "数据集"},
    "data.show": {"en": "Show what will be trained", "zh": "查看训练内容"},
    "data.add": {
        "en": "Add a dataset (JSON, JSONL, CSV, Parquet, TXT)",
        "zh": "添加数据集（JSON、JSONL、CSV、Parquet、TXT）",
    },
    "data.upload": {"en": "File", "zh": "文件"},
    "data.name": {"en": "Name", "zh": "名称"},
    "data.name.info": {
        "en": "Letters, digits, _ . -; the file's name by default",
        "zh": "字母、数字、_ . -；默认取文件名",
    },
    "data.format": {"en": "Format", "zh": "格式"},
    "data.format.info": {"en": "auto detects it from the columns", "zh": "auto 表示根据列名自动识别"},
    "data.text_split": {"en": "Plain text: one document per", "zh": "纯文本：每个文档为"},
    "data.text_split.info": {
        "en": "blank = blocks between blank lines, line = each line, auto = blocks if there are blank lines",
        "zh": "blank = 以空行分隔的段落，line = 每一行，auto = 有空行时按段落",
    },
    "data.columns": {"en": "Column mapping", "zh": "列映射"},
    "data.columns.info": {
        "en": "When your column names differ: standard=yours, comma-separated. Standard names: "
        "instruction, input, output, system, history, conversations, messages, prompt, "
        "completion, chosen, rejected, label, text, tools",
        "zh": "列名不同时填写：标准列名=你的列名，用逗号分隔。标准列名：instruction、input、output、"
        "system、history、conversations、messages、prompt、completion、chosen、rejected、"
        "label、text、tools",
    },
    "data.check": {"en": "Check and preview", "zh": "检查并预览"},
    "data.register": {"en": "Register dataset", "zh": "注册数据集"},
    "data.no_file": {"en": "⚠️ Upload a file first.", "zh": "⚠️ 请先上传文件。"},
    "data.registered": {
        "en": "✅ Registered **{name}** ({format}, {rows} rows). It is kept across restarts and "
        "can be picked in the Train tab.",
        "zh": "✅ 已注册 **{name}**（{format}，{rows} 行）。重启后仍然保留，可在“训练”页选择。",
    },
    "data.detected": {"en": "format **{format}**", "zh": "格式 **{format}**"},
    "data.stage": {"en": "statistics for stage {stage}", "zh": "按 {stage} 阶段统计"},
    "data.rows": {"en": "Rows (normalized)", "zh": "数据行（规范化后）"},
    "data.page": {"en": "Page", "zh": "页码"},
    "data.prev": {"en": "◀ Previous", "zh": "◀ 上一页"},
    "data.next": {"en": "Next ▶", "zh": "下一页 ▶"},
    "data.histogram": {"en": "Tokens per training example", "zh": "每个训练样本的 token 数"},
    "data.row": {"en": "Row # to show as trained", "zh": "查看第几行的训练文本"},
    "data.trained_heading": {
        "en": "**Exact training text** after the chat template",
        "zh": "**实际训练文本**（套用对话模板后）",
    },
    "data.legend_loss": {"en": "carries loss", "zh": "计算损失"},
    "data.legend_none": {"en": "no loss (prompt)", "zh": "不计算损失（提示）"},
    "data.legend_rejected": {"en": "rejected / undesired answer", "zh": "被拒绝/不期望的回答"},
    "data.legend_cut": {"en": "cut off by the cutoff length", "zh": "超出截断长度被丢弃"},
    "data.summary": {
        "en": "**{kind}** rows · train {train} · validation {validation} · test {test} (held out) · train split: "
        "{tokens} tokens ({trainable} carry loss) · longest {max}, mean {mean} · {truncated} truncated at "
        "cutoff {cutoff}, {dropped} dropped entirely",
        "zh": "**{kind}** 类数据 · 训练 {train} · 验证 {validation} · 测试 {test}（留出）· 训练集：共 {tokens} 个 "
        "token（其中 {trainable} 个计算损失）· 最长 {max}，平均 {mean} · 截断长度 {cutoff} 下截断 "
        "{truncated} 行，整行丢弃 {dropped} 行",
    },
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
    # chat tab (queue, template, stats, errors)
    "chat.queued": {"en": "waiting for another chat to finish…", "zh": "正在等待其他对话完成…"},
    "chat.fallback": {
        "en": "this model has no chat template: the plain 'User:/Assistant:' fallback is used",
        "zh": "该模型没有对话模板：使用简单的 “User:/Assistant:” 备用模板",
    },
    "chat.stats": {"en": "{tokens} tokens · {rate:.1f} tokens/s", "zh": "{tokens} 个 token · {rate:.1f} token/秒"},
    "chat.stopped": {"en": "stopped", "zh": "已停止"},
    "chat.done": {"en": "done", "zh": "完成"},
    "chat.quant_note": {"en": "{bits}-bit", "zh": "{bits} 位"},
    "chat.error": {"en": "⚠️ {message}", "zh": "⚠️ {message}"},
    "chat.ratings": {
        "en": "Rate the answers (collect preferences for rm, dpo, kto, grpo)",
        "zh": "为回答打分（收集偏好数据，用于 rm、dpo、kto、grpo）",
    },
    "chat.rate_dataset": {"en": "Ratings dataset", "zh": "评分数据集"},
    "chat.rate_dataset.info": {
        "en": "Pick one, or type a new name to create it (saved in the uploads folder).",
        "zh": "选择一个，或输入新名称以创建（保存在 uploads 目录）。",
    },
    "chat.rate_kind": {"en": "Kind of a new dataset", "zh": "新数据集的类型"},
    "chat.rate_kind.info": {
        "en": "preference: pairs (dpo, rm); kto: single good/bad judgements",
        "zh": "preference：偏好对（dpo、rm）；kto：单条好/坏判断",
    },
    "chat.rate_a": {"en": "A is better", "zh": "A 更好"},
    "chat.rate_b": {"en": "B is better", "zh": "B 更好"},
    "chat.rate_tie": {"en": "Tie", "zh": "平局"},
    "chat.rate_both_bad": {"en": "Both bad", "zh": "都不好"},
    "chat.rate_up": {"en": "👍 Good", "zh": "👍 好"},
    "chat.rate_down": {"en": "👎 Bad", "zh": "👎 不好"},
    "chat.rate_edited": {"en": "Corrected answer", "zh": "修改后的回答"},
    "chat.rate_edited.info": {
        "en": "Your corrected text becomes the chosen answer, the model's the rejected one.",
        "zh": "你修改后的文本作为被选回答，模型原回答作为被拒回答。",
    },
    "chat.rate_edit": {"en": "Edit the answer", "zh": "修改回答"},
    "chat.rate_count": {
        "en": "**{name}** ({kind}): {ratings} ratings, {rows} training rows",
        "zh": "**{name}**（{kind}）：{ratings} 条评分，{rows} 条训练数据",
    },
    "chat.rate_saved": {"en": "saved", "zh": "已保存"},
    "chat.rate_none": {"en": "No ratings dataset chosen yet.", "zh": "尚未选择评分数据集。"},
    "chat.compare.info": {
        "en": "One prompt to two models: base vs a run, or run vs run",
        "zh": "同一提示发给两个模型：基座对比训练结果，或两个训练结果互相对比",
    },
    "chat.api": {
        "en": "Call model A through the API (start it with `workbench serve`)",
        "zh": "通过 API 调用模型 A（先运行 `workbench serve`）",
    },
    "chat.api.curl": {"en": "curl", "zh": "curl"},
    "chat.api.python": {"en": "Python (openai package)", "zh": "Python（openai 包）"},
    # ---- export tab ----
    "export.run": {"en": "Run", "zh": "训练任务"},
    "export.kind": {"en": "What to export", "zh": "导出内容"},
    "export.kind.info": {
        "en": "merged: adapter merged into the base · adapter: the adapter alone · "
        "bnb: merged and quantized with bitsandbytes · gguf: one file for llama.cpp/Ollama",
        "zh": "merged：适配器合并进基座 · adapter：仅适配器 · bnb：合并后用 bitsandbytes 量化 · "
        "gguf：供 llama.cpp/Ollama 使用的单个文件",
    },
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
    # ---- method panel (train tab) ----
    "method.check": {"en": "Check parameters and memory", "zh": "检查参数量与内存"},
    "method.hint": {
        "en": "Change the method, model, batch size or length (or press the button) to see what "
        "the method trains and whether the run fits in this device's memory.",
        "zh": "修改方法、模型、批大小或长度（或点击按钮），即可查看该方法训练哪些参数，"
        "以及本次训练能否装入本设备内存。",
    },
    "method.cannot": {"en": "Cannot estimate this run:", "zh": "无法估算本次训练："},
    "method.trainable": {
        "en": "Trainable: {trainable} of {total} parameters ({share}%)",
        "zh": "可训练参数：{trainable} / {total}（{share}%）",
    },
    "method.weights": {"en": "Weights", "zh": "权重"},
    "method.gradients": {"en": "Gradients", "zh": "梯度"},
    "method.optimizer": {"en": "Optimizer states ({optim})", "zh": "优化器状态（{optim}）"},
    "method.activations": {
        "en": "Activations (batch {batch} × {cutoff} tokens)",
        "zh": "激活值（批大小 {batch} × {cutoff} 个 token）",
    },
    "method.activations_data": {
        "en": "Activations (largest batch of this data: {tokens} tokens)",
        "zh": "激活值（本数据最大的一批：{tokens} 个 token）",
    },
    "method.worst": {
        "en": "Worst case, every sequence at the cutoff (batch {batch} × {cutoff} tokens): {needed}",
        "zh": "最坏情况，每条序列都达到截断长度（批大小 {batch} × {cutoff} 个 token）：{needed}",
    },
    "method.dtype_auto": {
        "en": "Compute type {dtype} (auto): bf16 matrix products measured {ratio}× as fast "
        "as fp32 on this CPU at this model's shapes; bf16 is chosen from {margin}×",
        "zh": "计算类型 {dtype}（auto）：在本机 CPU 上按该模型的矩阵形状实测，bf16 矩阵乘法速度为 "
        "fp32 的 {ratio} 倍；达到 {margin} 倍才选用 bf16",
    },
    "method.dtype_set": {
        "en": "Compute type {dtype} (set by compute_type)",
        "zh": "计算类型 {dtype}（由 compute_type 指定）",
    },
    "method.dtype_device": {
        "en": "Compute type {dtype} (auto on {device})",
        "zh": "计算类型 {dtype}（{device} 上的 auto）",
    },
    "method.time": {
        "en": "Estimated time: about {duration} ({steps} steps, ~{per_step} s/step) at {speed} "
        "real tokens/s measured on this machine",
        "zh": "预计耗时：约 {duration}（{steps} 步，每步约 {per_step} 秒），按本机实测 {speed} 个真实 token/秒",
    },
    "method.time_unknown": {
        "en": "Estimated time: not known yet ({steps} steps, {tokens} tokens): no speed "
        "measured on this machine for this model, method and compute type; the first "
        "run (or workbench train CONFIG --check --calibrate) measures it",
        "zh": "预计耗时：暂未知（{steps} 步，{tokens} 个 token）：本机尚未实测该模型、方法与计算类型的"
        "速度；第一次训练（或 workbench train CONFIG --check --calibrate）会测量",
    },
    "method.overhead": {"en": "Runtime (libraries, device context)", "zh": "运行时（库、设备上下文）"},
    "method.needed": {"en": "Estimated peak", "zh": "估计峰值"},
    "method.device": {"en": "Device {device}: {free} free of {total}", "zh": "设备 {device}：可用 {free}，共 {total}"},
    "method.fits": {"en": "Fits", "zh": "装得下"},
    "method.too_big": {
        "en": "Does not fit: lower the batch size or cutoff length, turn on activation "
        "checkpointing, or train fewer parameters (LoRA, QLoRA)",
        "zh": "装不下：请减小批大小或截断长度、开启激活检查点，或减少可训练参数（LoRA、QLoRA）",
    },
    # ---- runs and the job controller (train tab) ----
    "jobs.save_config": {"en": "Save config", "zh": "保存配置"},
    "jobs.load_config": {"en": "Load config (YAML)", "zh": "加载配置（YAML）"},
    "jobs.use_run_config": {"en": "Copy this run's config into the form", "zh": "将此任务的配置填入表单"},
    "jobs.config_file": {"en": "Saved config", "zh": "已保存的配置"},
    "jobs.run_details": {"en": "Config and command of the selected run", "zh": "所选任务的配置与命令"},
    "jobs.run_config": {"en": "config.yaml of the run", "zh": "任务的 config.yaml"},
    "jobs.command": {"en": "Repeat this run without the browser:", "zh": "不用浏览器重复此任务："},
    "jobs.other_nodes": {
        "en": "This machine is node 0. Copy this config.yaml to the {n} other machine(s) and run "
        "there (each with its own node_rank):",
        "zh": "本机是 0 号节点。把这个 config.yaml 复制到另外 {n} 台机器上，并在那里运行（各用自己的 node_rank）：",
    },
    "jobs.saved_config": {"en": "Config saved as `{path}`.", "zh": "配置已保存为 `{path}`。"},
    "jobs.loaded_config": {
        "en": "Loaded the config from **{name}** into the form.",
        "zh": "已将 **{name}** 中的配置填入表单。",
    },
    "jobs.bad_file": {"en": "⚠️ {name} cannot be loaded: {reason}", "zh": "⚠️ 无法加载 {name}：{reason}"},
    "jobs.steps_per_second": {"en": "steps/s", "zh": "步/秒"},
    "jobs.stage.stop_file": {
        "en": "stop asked: the trainer saves a checkpoint and the result, then ends",
        "zh": "已请求停止：训练进程保存检查点和结果后结束",
    },
    "jobs.stage.sigterm": {
        "en": "it did not stop within the grace period: SIGTERM sent to its processes",
        "zh": "宽限期内未停止：已向其进程发送 SIGTERM",
    },
    "jobs.stage.sigkill": {"en": "it ignored SIGTERM: SIGKILL sent", "zh": "进程未响应 SIGTERM：已发送 SIGKILL"},
    "jobs.resume_offered": {
        "en": "Press Resume to continue from its last complete checkpoint.",
        "zh": "按「继续训练」从最近的完整检查点继续。",
    },
    "export.pick_export": {"en": "Pick an export to delete first.", "zh": "请先选择要删除的导出。"},
    "export.started": {
        "en": "Export ({kind}) started; it runs in the background.",
        "zh": "导出（{kind}）已开始，在后台运行。",
    },
    "export.cancelled": {
        "en": "Export cancelled; nothing half-written is kept.",
        "zh": "导出已取消，不会留下写了一半的文件。",
    },
    "export.state_running": {"en": "running", "zh": "进行中"},
    "export.state_done": {"en": "done", "zh": "完成"},
    "export.state_error": {"en": "failed", "zh": "失败"},
    "export.state_cancelled": {"en": "cancelled", "zh": "已取消"},
    "export.merging": {"en": "merging", "zh": "正在合并"},
    "export.merged_done": {
        "en": "Merged model saved in `{folder}` ({size} MB zip).",
        "zh": "合并后的模型已保存到 `{folder}`（zip 共 {size} MB）。",
    },
    "export.adapter_done": {"en": "Adapter saved in `{folder}`.", "zh": "适配器已保存到 `{folder}`。"},
    "export.col_parity": {"en": "Parity with the trained model", "zh": "与训练模型的一致性"},
    "export.parity_ok": {"en": "as trained", "zh": "与训练一致"},
    "export.parity_beyond": {"en": "differs beyond its format", "zh": "差异超出数值格式可解释的范围"},
    "export.parity_failed": {"en": "did not reload", "zh": "无法重新加载"},
    "export.parity_unchecked": {"en": "not checked", "zh": "未检查"},
    "export.parity_short": {
        "en": "first tokens {same}/{n}, {agree}% tokens agree",
        "zh": "首个词元一致 {same}/{n}，{agree}% 词元一致",
    },
    "export.expected_size": {"en": "Expected size:", "zh": "预计大小："},
    # ---- evaluate and experiments tabs ----
    "tab.evaluate": {"en": "Evaluate", "zh": "评估"},
    "tab.experiments": {"en": "Experiments", "zh": "实验对比"},
    "eval.target": {"en": "Model", "zh": "模型"},
    "eval.target.info": {
        "en": "The base, a run (its final result) or one of its checkpoints.",
        "zh": "基座模型、某个任务（最终结果）或它的检查点。",
    },
    "eval.dataset": {"en": "Dataset", "zh": "数据集"},
    "eval.dataset.info": {
        "en": "Empty = the run's own dataset and held-out split.",
        "zh": "留空表示使用该任务自己的数据集与留出划分。",
    },
    "eval.split": {"en": "Split", "zh": "数据划分"},
    "eval.limit": {"en": "Rows (0 = all)", "zh": "行数（0 表示全部）"},
    "eval.refresh": {"en": "Refresh", "zh": "刷新"},
    "eval.run": {"en": "Evaluate", "zh": "评估"},
    "eval.compare": {"en": "Before / after (base vs tuned)", "zh": "调优前后对比（基座与微调）"},
    "eval.gap": {"en": "Gap analysis (base, before training)", "zh": "差距分析（基座，训练前）"},
    "eval.table": {"en": "Rows", "zh": "逐行结果"},
    "eval.running": {"en": "evaluating", "zh": "正在评估"},
    "eval.need_run": {
        "en": "Pick a tuned run or checkpoint for before / after.",
        "zh": "调优前后对比需要选择一个微调任务或检查点。",
    },
    "eval.need_dataset": {"en": "Pick a dataset for the base model.", "zh": "请为基座模型选择数据集。"},
    "eval.metrics": {
        "en": "**{target}** on {dataset}/{split} ({rows} rows): {metrics}",
        "zh": "**{target}** 在 {dataset}/{split} 上（{rows} 行）：{metrics}",
    },
    "eval.compare_summary": {
        "en": "**{target}** vs **{base}** on {dataset}/{split} ({rows} rows): **{improved} improved**, "
        "**{worse} got worse**.",
        "zh": "**{target}** 对比 **{base}**，{dataset}/{split}（{rows} 行）：**{improved} 行变好**，"
        "**{worse} 行变差**。",
    },
    "eval.metric_change": {"en": "Metric change", "zh": "指标变化"},
    "eval.forgetting": {
        "en": "Forgetting check: general-text perplexity {before:.2f} → {after:.2f} ({change:+.1f}%, threshold {threshold:.0f}%).",
        "zh": "遗忘检查：通用文本困惑度 {before:.2f} → {after:.2f}（{change:+.1f}%，阈值 {threshold:.0f}%）。",
    },
    "eval.forgetting_warning": {
        "en": "⚠️ The tuned model lost more general ability than the threshold allows: train fewer "
        "steps, lower the learning rate, or mix in general data.",
        "zh": "⚠️ 微调后的模型通用能力下降超过阈值：可减少训练步数、降低学习率，或混入通用数据。",
    },
    "eval.forgetting_ok": {"en": "✅ Within the threshold.", "zh": "✅ 在阈值之内。"},
    "eval.gap_summary": {
        "en": "The base **{target}** gets **{failed} of {rows}** {split} rows of {dataset} wrong "
        "(exact match {em:.2f}). The table lists what tuning must fix.",
        "zh": "基座 **{target}** 在 {dataset} 的 {split} 划分上答错 **{failed}/{rows}** 行"
        "（完全匹配 {em:.2f}）。下表列出微调需要解决的问题。",
    },
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
    "exp.gallery": {
        "en": "Sample gallery: the same prompts at every saved checkpoint",
        "zh": "样例画廊：每个已保存检查点对同一组提示的回答",
    },
    "exp.gallery_run": {"en": "Run", "zh": "任务"},
    "exp.gallery_prompts": {"en": "Prompts (one per line)", "zh": "提示（每行一个）"},
    "exp.gallery_prompts.info": {
        "en": "Empty = the first prompts of the run's test split.",
        "zh": "留空表示使用该任务测试集的前几个提示。",
    },
    "exp.gallery_build": {"en": "Generate at every checkpoint", "zh": "在每个检查点上生成"},
    "exp.gallery_table": {"en": "Answers by checkpoint", "zh": "各检查点的回答"},
    # ---- where things live; the pre-run check ----
    "app.folders": {
        "en": "Runs are saved in `{saves}` · datasets are read from {folders}",
        "zh": "训练结果保存在 `{saves}` · 数据集读取自 {folders}",
    },
    "data.source": {"en": "From `{folder}`", "zh": "来自 `{folder}`"},
    "data.replaces": {
        "en": "replaces the shipped dataset of the same name (`{shipped}`)",
        "zh": "覆盖了同名的内置数据集（`{shipped}`）",
    },
    "train.cannot_start": {
        "en": "The run cannot start (nothing was created):",
        "zh": "无法开始训练（未创建任何内容）：",
    },
    # ---- safe by default ----
    "data.sampled": {
        "en": "sampled: first {shown} rows of {total} (registering and training check every row)",
        "zh": "抽样：共 {total} 行中的前 {shown} 行（注册和训练时会检查每一行）",
    },
    "upload.too_large": {
        "en": "the upload is {size} MB in all, over the {limit} MB limit of one request",
        "zh": "本次上传共 {size} MB，超过单次请求 {limit} MB 的上限",
    },
    "upload.disk_full": {
        "en": "the server is low on disk space; the upload was refused",
        "zh": "服务器磁盘空间不足，已拒绝上传",
    },
    "login.too_many": {
        "en": "too many failed logins from this address; try again in a minute",
        "zh": "该地址登录失败次数过多，请一分钟后再试",
    },
    # ---- jobs other than training (evaluation, gallery, export) ----
    "job.abort": {"en": "Stop", "zh": "停止"},
    "job.resubmit": {"en": "Run again", "zh": "重新运行"},
    "job.submitted": {
        "en": "Job **{job}** queued; it runs in its own process (progress below).",
        "zh": "任务 **{job}** 已排队，在独立进程中运行（进度见下方）。",
    },
    "job.none": {"en": "No job to act on yet.", "zh": "还没有可操作的任务。"},
    "job.failed": {"en": "⚠️ Job {job} {status}: {message}", "zh": "⚠️ 任务 {job} {status}：{message}"},
    "export.state_queued": {"en": "waiting in the queue", "zh": "排队中"},
    # ---- charts ----
    "train.loss_chart.x": {"en": "step", "zh": "步"},
    "train.loss_chart.y": {"en": "loss", "zh": "损失"},
    "train.loss_chart.color": {"en": "curve", "zh": "曲线"},
    "train.lr_chart.x": {"en": "step", "zh": "步"},
    "train.lr_chart.y": {"en": "learning rate", "zh": "学习率"},
    "train.lr_chart.color": {"en": "curve", "zh": "曲线"},
    "chart.loss": {"en": "training loss", "zh": "训练损失"},
    "chart.eval_loss": {"en": "evaluation loss", "zh": "评估损失"},
    "chart.smoothed": {"en": "training loss, smoothed", "zh": "训练损失（平滑）"},
    "chart.learning_rate": {"en": "learning rate", "zh": "学习率"},
    "train.smoothing": {"en": "Smoothing", "zh": "平滑"},
    "train.smoothing.info": {
        "en": "0 = raw points; higher draws a smoother training-loss curve beside them",
        "zh": "0 = 原始数据点；数值越大，另画的训练损失曲线越平滑",
    },
    "train.loss_now": {"en": "loss", "zh": "损失"},
    "train.hw_percent.x": {"en": "seconds since the first sample", "zh": "距首次采样的秒数"},
    "train.hw_percent.y": {"en": "percent", "zh": "百分比"},
    "train.hw_percent.color": {"en": "curve", "zh": "曲线"},
    "train.hw_memory.x": {"en": "seconds since the first sample", "zh": "距首次采样的秒数"},
    "train.hw_memory.y": {"en": "MB", "zh": "MB"},
    "train.hw_memory.color": {"en": "curve", "zh": "曲线"},
    "train.hw_disk.x": {"en": "seconds since the first sample", "zh": "距首次采样的秒数"},
    "train.hw_disk.y": {"en": "GB", "zh": "GB"},
    "train.hw_disk.color": {"en": "curve", "zh": "曲线"},
    "data.histogram.x": {"en": "tokens per example", "zh": "每个样本的 token 数"},
    "data.histogram.y": {"en": "rows", "zh": "行数"},
    # ---- messages of the job controller (workbench/jobs.py) ----
    "jobstate.unknown": {"en": "unknown", "zh": "未知"},
    "reason.stopped": {"en": "stopped on request", "zh": "应请求停止"},
    "reason.early_stopping": {
        "en": "early stopping: {metric} did not improve by more than {threshold} for "
        "{patience} validation(s) in a row (step {step} of {max_steps})",
        "zh": "提前停止：{metric} 连续 {patience} 次验证提升未超过 {threshold}（第 {step} 步，共 {max_steps} 步）",
    },
    "reason.all_steps": {"en": "finished all {max_steps} steps", "zh": "已完成全部 {max_steps} 步"},
    "jobmsg.no_final_event": {
        "en": "the training process ended without an end or error event",
        "zh": "训练进程已结束，但没有记录结束或错误事件",
    },
    "jobmsg.cannot_resume": {
        "en": "run {run} cannot be resumed while it is {status}",
        "zh": "任务 {run} 处于“{status}”状态，无法继续训练",
    },
    "jobmsg.no_checkpoint": {
        "en": "run {run} has no complete checkpoint to resume from",
        "zh": "任务 {run} 没有可供继续训练的完整检查点",
    },
    "jobmsg.no_such_run": {"en": "no such run: {run}", "zh": "没有这个任务：{run}"},
    "jobmsg.dequeued": {"en": "removed from the queue before it started", "zh": "开始前已从队列中移除"},
    "jobmsg.already": {"en": "run {run} is already {status}", "zh": "任务 {run} 已是“{status}”状态"},
    "jobmsg.stop_requested": {
        "en": "stop requested: the trainer saves a checkpoint and the result, then ends",
        "zh": "已请求停止：训练器将保存检查点和结果后结束",
    },
    "jobmsg.ended_before_stop": {
        "en": "training had already ended when the stop was asked for: the result is complete",
        "zh": "请求停止时训练已经结束：结果完整",
    },
    "jobmsg.sigterm_then": {
        "en": "terminated with SIGTERM after the grace period; {reason}",
        "zh": "宽限期后以 SIGTERM 终止；{reason}",
    },
    "jobmsg.sigterm": {"en": "terminated with SIGTERM after the grace period", "zh": "宽限期后以 SIGTERM 终止"},
    "jobmsg.sigkill": {
        "en": "killed with SIGKILL: the process did not end after SIGTERM",
        "zh": "以 SIGKILL 强制结束：进程在 SIGTERM 后仍未结束",
    },
    "jobmsg.stopped": {"en": "stopped", "zh": "已停止"},
    "jobmsg.stop_requested_job": {
        "en": "stop requested: the job ends at its next step",
        "zh": "已请求停止：任务将在下一步结束",
    },
    "jobmsg.unwatched_job": {
        "en": "the job's process ended while no controller was watching; submit it again",
        "zh": "任务进程在无人监控时结束；请重新提交",
    },
    "jobmsg.unwatched": {
        "en": "the training process ended while no controller was watching; resume it from its last checkpoint",
        "zh": "训练进程在无人监控时结束；可从最后一个检查点继续训练",
    },
    "jobmsg.stopped_gracefully": {
        "en": "stopped gracefully: checkpoint and result saved",
        "zh": "已正常停止：检查点和结果已保存",
    },
    "jobmsg.what_train": {"en": "the training process", "zh": "训练进程"},
    "jobmsg.what_job": {"en": "the {kind} process", "zh": "{kind} 任务进程"},
    "jobmsg.killed": {"en": "{what} was killed by {signal}", "zh": "{what}被 {signal} 终止"},
    "jobmsg.killed_oom": {
        "en": "{what} was killed by {signal} (often the system running out of memory)",
        "zh": "{what}被 {signal} 终止（通常是系统内存不足）",
    },
    "jobmsg.bad_config": {"en": "bad config: {reason}", "zh": "配置有误：{reason}"},
    "jobmsg.see_log": {"en": "see the log", "zh": "请查看日志"},
    "jobmsg.exit_code": {"en": "{what} exited with code {code}", "zh": "{what}以退出码 {code} 结束"},
    "jobmsg.exit_code_tail": {
        "en": "{what} exited with code {code}: {tail}",
        "zh": "{what}以退出码 {code} 结束：{tail}",
    },
    "jobmsg.no_status": {"en": "{file} has no status", "zh": "{file} 中没有状态"},
    "jobmsg.wrong_type": {
        "en": "{file}: {name} has the wrong type ({type})",
        "zh": "{file}：{name} 的类型不对（{type}）",
    },
    "jobmsg.unknown_status": {"en": "{file}: unknown status {status}", "zh": "{file}：未知状态 {status}"},
    "jobmsg.bad_command": {"en": "{file}: command is not a list of strings", "zh": "{file}：command 不是字符串列表"},
}

# a job's state inside a sentence: the state's own word in English, its label in Chinese
for _state in ("queued", "running", "stopping", "finished", "failed", "aborted", "interrupted", "damaged"):
    STRINGS[f"jobstate.{_state}"] = {"en": _state, "zh": STRINGS[f"status.{_state}"]["zh"]}


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


class Message(str):
    """A message built by the core (no gradio there): it reads as English wherever a plain
    string is expected (logs, the command line, job.json), and keeps its key and parameters so
    the page renders it in the session's language with `render`."""

    key: str
    params: dict

    def __new__(cls, key: str, **params):
        if key not in STRINGS:
            raise KeyError(f"no locale string {key!r}")
        self = super().__new__(cls, t(key, "en", **params))
        self.key, self.params = key, params
        return self

    def __reduce__(self):  # copies (dataclasses.asdict) keep the key
        return (_rebuild, (self.key, self.params))

    def render(self, lang: str) -> str:
        return t(self.key, lang, **{name: render(value, lang) for name, value in self.params.items()})

    def to_data(self) -> dict:
        return {
            "key": self.key,
            "params": {n: v.to_data() if isinstance(v, Message) else v for n, v in self.params.items()},
        }

    @classmethod
    def from_data(cls, data) -> Message | None:
        """The message saved by to_data, or None when the data is not one (a hand edit, an
        older or newer version of the table)."""
        try:
            params = {n: cls.from_data(v) or v if isinstance(v, dict) else v for n, v in data["params"].items()}
            return cls(data["key"], **params)
        except (KeyError, TypeError, AttributeError, ValueError, IndexError):
            return None


def _rebuild(key: str, params: dict) -> Message:
    return Message(key, **params)


def render(text, lang: str) -> str:
    """A core message in `lang`; any other text (an exception's words, a log line) as it is."""
    return text.render(lang) if isinstance(text, Message) else ("" if text is None else str(text))


def render_error(err: BaseException, lang: str) -> str:
    """An exception raised with a core message, in `lang`; any other as its text."""
    first = err.args[0] if len(err.args) == 1 else None
    return render(first, lang) if isinstance(first, Message) else str(err)
