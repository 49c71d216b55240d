"""``ark chat``: talk to the agent in the terminal. The patient types; the agent's retrievals
(queries, documents kept, condensed results) and its Ask or Tell, with its reasoning, are shown.
An empty line or end of input ends the chat."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ark_assets.lib.agent.chat import ChatSession, ChatTurn
from ark_assets.lib.agent.loop import LoopSettings


def show(turn: ChatTurn, out: TextIO) -> None:
    for number, retrieval in enumerate(turn.retrievals(), 1):
        print(f"  [retrieval {number}] queries: {' | '.join(retrieval['queries'])}", file=out)
        for query, hits, refined in zip(
            retrieval["queries"], retrieval["hits"], retrieval["refined"], strict=True
        ):
            print(f"    {query}: {len(hits)} document(s) {', '.join(hits)}", file=out)
            print(f"      → {refined or '(nothing passed the filter)'}", file=out)
    if turn.run.final is None:
        print(f"  [no action] {turn.run.failure}", file=out)
        return
    print(f"  [{turn.action}] reasoning: {turn.reasoning}", file=out)
    print(f"doctor> {turn.reply}", file=out)


def chat(args: argparse.Namespace, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> None:
    from ark_assets.cli.agent import open_agent_for

    settings = LoopSettings(grammar=args.grammar)
    with open_agent_for(args, settings) as loop:
        session = ChatSession(loop, language=args.language)
        print("ark chat: type the patient's messages; an empty line ends.", file=out)
        while True:
            print("patient> ", end="", file=out, flush=True)
            line = stdin.readline()
            if not line.strip():
                break
            show(session.send(line.strip()), out)
