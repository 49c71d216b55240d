"""The pure core of ark-assets: plain Python with no Dagster import, tested directly.

Asset functions in ``ark_assets.defs`` load inputs, call into these modules, write outputs and
attach metadata; everything that decides *what* the data becomes lives here.
"""
