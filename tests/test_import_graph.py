# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The sub-packages of mmreid_usl import each other without a cycle."""
import ast
import collections
import os
import os.path as osp

PKG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'mmreid_usl')


def _modules():
    mods = {}
    for dirpath, _, files in os.walk(PKG):
        for name in files:
            if name.endswith('.py'):
                path = osp.join(dirpath, name)
                rel = osp.relpath(path, osp.dirname(PKG))[:-3]
                mod = rel.replace(os.sep, '.')
                if mod.endswith('.__init__'):
                    mod = mod[:-len('.__init__')]
                mods[mod] = path
    return mods


def _imports(mod, path, mods):
    """Modules of the package imported at module level by ``mod``."""
    is_pkg = path.endswith('__init__.py')
    for node in ast.parse(open(path, encoding='utf-8').read()).body:
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split('.') if is_pkg else mod.split('.')[:-1]
                base = base[:len(base) - node.level + 1]
                name = '.'.join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ''
            names = [name] + [f'{name}.{a.name}' for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            while name and name not in mods:
                name = name.rsplit('.', 1)[0] if '.' in name else ''
            if name and name != mod:
                yield name


def _subpackage_graph():
    mods = _modules()
    graph = collections.defaultdict(set)
    for mod, path in mods.items():
        src = '.'.join(mod.split('.')[:2])
        for dep in _imports(mod, path, mods):
            dst = '.'.join(dep.split('.')[:2])
            if src != dst and dst != 'mmreid_usl':
                graph[src].add(dst)
    return graph


def _find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 'open':
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = 'done'
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_between_subpackages():
    graph = _subpackage_graph()
    assert graph, 'no import found: the scan is broken'
    assert _find_cycle(graph) is None, _find_cycle(graph)


def test_cycle_finder_finds_a_cycle():
    assert _find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == \
        ['a', 'b', 'c', 'a']
    assert _find_cycle({'a': {'b'}, 'b': set()}) is None


def test_engine_does_not_import_apis():
    assert 'mmreid_usl.apis' not in _subpackage_graph()['mmreid_usl.engine']
