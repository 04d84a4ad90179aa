# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The picture of a gallery search: one row per query and its top-k."""
import os
import os.path as osp
import textwrap
from typing import List, Optional, Tuple, Union

import mmcv
import numpy as np

#: Display size (h, w) of every thumbnail; ReID crops are 2:1.
THUMB_HW = (128, 64)
QUERY_COLOR, NEUTRAL_COLOR = '#2c7bb6', '#7f7f7f'
MATCH_COLOR, MISMATCH_COLOR = '#1a9641', '#d7191c'


def _thumb(item: Union[str, np.ndarray]) -> np.ndarray:
    """RGB thumbnail of a path or a BGR array (grey if unreadable)."""
    img = None
    if isinstance(item, np.ndarray):
        img = item if item.ndim == 3 else np.repeat(item[..., None], 3, 2)
        img = img[..., :3][..., ::-1]
    elif osp.isfile(str(item)):
        try:
            img = mmcv.imread(str(item), channel_order='rgb')
        except Exception:  # noqa: B902 (the search itself succeeded)
            img = None
    if img is None:
        return np.full(THUMB_HW + (3, ), 200, np.uint8)
    return mmcv.imresize(np.ascontiguousarray(img), (THUMB_HW[1], THUMB_HW[0]))


def _frame(ax, color: str, width: float = 4.0) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(width)


def _short(path: str, width: int = 14) -> str:
    name = osp.basename(path)
    return name if len(name) <= width else name[:width - 1] + '…'


def draw_search_figure(queries: list,
                       results: List[dict],
                       query_ids: Optional[Tuple[np.ndarray, np.ndarray]],
                       out_file: str,
                       title: Optional[str] = None) -> np.ndarray:
    """Draw and save the search results; return the RGB picture.

    Args:
        queries (list): The query images (paths or BGR arrays), in the
            order of ``results``.
        results (list[dict]): Per query ``query``, ``paths``, ``scores``
            and, when the gallery has ids, ``pids`` / ``camids``.
        query_ids (tuple, optional): ``(pids, camids)`` of the queries
            (parsed from their names), or None.
        out_file (str): Output image (format from the suffix).
        title (str, optional): Figure title.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB rendering of the figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    topk = max(len(r['paths']) for r in results)
    with_ids = query_ids is not None and all('pids' in r for r in results)
    rows, cols = len(results), topk + 2  # query, spacer, top-k
    cell_h = 2.6 if with_ids else 2.45
    width = 1.1 * (topk + 1.3)
    if title is None:
        title = ('query (blue) and its gallery ranked by cosine similarity '
                 's' + ('; green = same id, red = other id (ids parsed from '
                        'the file names)' if with_ids else ''))
    lines = [
        part for line in title.splitlines()
        for part in textwrap.wrap(line, max(20, int(width * 13)))
    ]
    head, foot = 0.3 + 0.2 * len(lines), 0.5
    height = cell_h * rows + head + foot
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows,
                            cols,
                            width_ratios=[1, 0.3] + [1] * topk,
                            wspace=0.08,
                            hspace=0.32,
                            left=0.01,
                            right=0.99,
                            bottom=foot / height,
                            top=1 - head / height)
    for r, (query, res) in enumerate(zip(queries, results)):
        ax = fig.add_subplot(grid[r, 0])
        ax.imshow(_thumb(query), aspect='auto')
        _frame(ax, QUERY_COLOR, 5.0)
        ax.set_title('query', fontsize=9, fontweight='bold', pad=3)
        if with_ids:
            qpid, qcam = int(query_ids[0][r]), int(query_ids[1][r])
            hits = sum(p == qpid for p in res['pids'])
            ax.set_xlabel(
                f'id {qpid}  cam {qcam + 1}\n{hits}/{len(res["pids"])} '
                'same id',
                fontsize=8)
        else:
            ax.set_xlabel(_short(res['query']), fontsize=7.5)
        for k, (path, score) in enumerate(zip(res['paths'], res['scores'])):
            ax = fig.add_subplot(grid[r, k + 2])
            ax.imshow(_thumb(path), aspect='auto')
            ax.set_title(f'#{k + 1}', fontsize=8, pad=3)
            if with_ids:
                same = res['pids'][k] == qpid
                _frame(ax, MATCH_COLOR if same else MISMATCH_COLOR)
                ax.set_xlabel(
                    f's={score:.3f}\ncam {res["camids"][k] + 1}  '
                    f'id {res["pids"][k]}',
                    fontsize=7.5)
            else:
                _frame(ax, NEUTRAL_COLOR, 2.0)
                ax.set_xlabel(f's={score:.3f}\n{_short(path)}', fontsize=7.5)
        fig.add_subplot(grid[r, 1]).axis('off')
    if lines:
        fig.suptitle('\n'.join(lines),
                     fontsize=10,
                     y=1 - 0.08 / height,
                     va='top')
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.set_dpi(100)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    if out_file.lower().endswith('.png'):
        # a 256-colour palette keeps a picture of photos ~2x smaller
        from PIL import Image
        Image.fromarray(rgb).quantize(
            256, method=Image.Quantize.MEDIANCUT).save(
                out_file, optimize=True)
    else:
        fig.savefig(out_file, dpi=100)
    return rgb
