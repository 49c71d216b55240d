"""The agent: the trained student run as MedArk's ask-or-tell agent, one batched loop for DPO
rejections, evaluation predictions and the chat.

``policy`` is the contract a student backend fulfils (batched text generation, optionally
grammar-constrained); ``prompt`` renders a dialogue prefix exactly as SFT trained on it;
``parse`` reads a tool call out of generated text; ``loop`` advances every prefix of a batch
together — generate, parse, retrieve and refine, append the tool response, generate again —
until each ends in an Ask or Tell action or a recorded failure. Nothing here imports Dagster.
"""
