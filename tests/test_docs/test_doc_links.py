# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The README and the docs link to files and headings that exist, and the
benchmark page is organised by topic (no issue numbers or work periods in its
headings)."""
import glob
import os.path as osp
import re

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAGES = sorted(
    osp.relpath(p, REPO) for p in [
        osp.join(REPO, 'README.md'),
        osp.join(REPO, 'CHANGELOG.md'),
        *glob.glob(osp.join(REPO, 'docs', '*.md')),
        *glob.glob(osp.join(REPO, 'docs', 'algorithms', '*.md')),
    ] if osp.isfile(p))
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^\s*(```|~~~)')


def _prose_lines(text):
    """The lines outside fenced code blocks."""
    inside = False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            yield line


def _slug(heading):
    """GitHub's anchor of a heading."""
    text = re.sub(r'[`*_]|\[([^\]]*)\]\([^)]*\)', r'\1', heading.strip())
    text = re.sub(r'[^\w\- ]', '', text.lower())
    return text.replace(' ', '-')


def _anchors(path):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    seen, anchors = {}, set()
    for line in _prose_lines(text):
        match = re.match(r'^#{1,6} (.*)$', line)
        if not match:
            continue
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f'{slug}-{count}')
    return anchors


def test_the_pages_exist():
    assert {
        'README.md', 'CHANGELOG.md', 'docs/benchmarks.md', 'docs/model_zoo.md'
    } <= set(p.replace(osp.sep, '/') for p in PAGES)


@pytest.mark.parametrize('page', PAGES)
def test_relative_links_resolve(page):
    path = osp.join(REPO, page)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    broken = []
    for line in _prose_lines(text):
        for target in LINK.findall(line):
            if re.match(r'^[a-z][a-z0-9+.-]*:', target):  # http:, mailto:
                continue
            file, _, anchor = target.partition('#')
            dest = osp.normpath(osp.join(osp.dirname(path), file)) \
                if file else path
            if not osp.exists(dest):
                broken.append(f'{target}: no such file')
            elif anchor and dest.endswith('.md') and \
                    anchor not in _anchors(dest):
                broken.append(f'{target}: no such heading')
    assert not broken, broken


def test_benchmark_headings_name_topics_not_issues_or_periods():
    with open(osp.join(REPO, 'docs', 'benchmarks.md'), encoding='utf-8') as f:
        headings = [
            line for line in _prose_lines(f.read())
            if re.match(r'^#{1,6} ', line)
        ]
    assert len(headings) > 10
    period = (r'\bissues?\b|\bsessions?\b|#\d|\b20\d\d-\d\d|\d\d:\d\d|'
              r'\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]* \d|'
              r'\bthis (session|week)\b')
    bad = [h for h in headings if re.search(period, h, re.I)]
    assert not bad, bad
