"""``ark serve``: the agent in a browser (Gradio, extra ``serve``), like MedArk's demo.

The page shows the chat, the action path of the last reply (retrievals with their queries,
the documents kept and their condensed results, then the Ask or Tell with its reasoning) and the
raw generated text of every step. It binds to 127.0.0.1 unless told otherwise, never creates a
share link, and turns Gradio's analytics off; nothing logs the patient's text.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ark_assets.lib.agent.chat import ChatSession, ChatTurn


def action_path(turn: ChatTurn) -> list[dict[str, Any]]:
    """The steps of one reply as plain data for the page's JSON panel."""
    path: list[dict[str, Any]] = [{"retrieval": r} for r in turn.retrievals()]
    path.append({"final": turn.action, "reasoning": turn.reasoning, "failure": turn.run.failure})
    return path


def build_app(session_factory: Any) -> Any:
    """The Gradio Blocks app; ``session_factory()`` makes one ChatSession per browser tab."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    def respond(message: str, messages: list[dict[str, str]], session: ChatSession | None):
        session = session or session_factory()
        turn = session.send(message)
        reply = turn.reply or f"(no action: {turn.run.failure})"
        messages = [
            *messages,
            {"role": "user", "content": message},
            {"role": "assistant", "content": f"[{turn.action}] {reply}"},
        ]
        raw = "\n\n".join(f"step {s.step}.{s.attempt}:\n{s.raw_text}" for s in turn.run.steps)
        return "", messages, action_path(turn), raw, session

    with gr.Blocks(title="ark-assets agent", analytics_enabled=False) as app:
        gr.Markdown("## ark-assets agent — retrieve, then ask or tell")
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="conversation")
                box = gr.Textbox(label="patient", placeholder="describe your symptoms…")
            with gr.Column(scale=2):
                path = gr.JSON(label="action path of the last reply")
                raw = gr.Textbox(label="raw generations", lines=12)
        box.submit(respond, [box, chatbot, state], [box, chatbot, path, raw, state])
    return app


def serve(args: argparse.Namespace) -> None:
    from ark_assets.cli.agent import open_agent_for
    from ark_assets.lib.agent.loop import LoopSettings

    settings = LoopSettings(grammar=args.grammar)
    with open_agent_for(args, settings) as loop:
        app = build_app(lambda: ChatSession(loop, language=args.language))
        app.queue(default_concurrency_limit=1).launch(
            server_name=args.host, server_port=args.port, share=False, show_error=False
        )
