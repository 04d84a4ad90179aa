# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The rank-list picture: one row per query, then its ranked gallery.

One renderer for the inferencer's search picture
(:func:`draw_search_results`, used by
:meth:`mmreid_usl.apis.ReIDInferencer.visualize`) and the test-split rank
lists of ``tools/analysis_tools/visualize_ranklist.py``: the callers say
what each thumbnail is labelled and how it is framed (:class:`RankItem`,
:class:`RankRow`), :func:`draw_ranklist` lays the rows out, titles and
saves the picture.
"""
import os
import os.path as osp
import textwrap
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np

ImageType = Union[str, np.ndarray]

#: Display size (h, w) of every thumbnail; ReID crops are 2:1.
THUMB_HW = (128, 64)
QUERY_COLOR, NEUTRAL_COLOR = '#2c7bb6', '#7f7f7f'
MATCH_COLOR, MISMATCH_COLOR = '#1a9641', '#d7191c'


@dataclass
class RankItem:
    """One ranked gallery image.

    Args:
        image (str | np.ndarray): A path or a BGR array.
        label (str): Text under the thumbnail.
        color (str): Frame colour. Defaults to :data:`NEUTRAL_COLOR`.
        frame_width (float): Frame width in points. Defaults to 2.0.
    """
    image: ImageType
    label: str
    color: str = NEUTRAL_COLOR
    frame_width: float = 2.0

    @classmethod
    def matched(cls, image: ImageType, label: str,
                same_id: bool) -> 'RankItem':
        """An item framed green (same person) or red (another person)."""
        return cls(image, label, MATCH_COLOR if same_id else MISMATCH_COLOR,
                   4.0)


@dataclass
class RankRow:
    """A query and its ranked gallery, best first.

    Args:
        query (str | np.ndarray): A path or a BGR array.
        label (str): Text under the query.
        gallery (list[RankItem]): The ranked gallery images.
        label_size (float): Font size of ``label``. Defaults to 8.
    """
    query: ImageType
    label: str
    gallery: List[RankItem] = field(default_factory=list)
    label_size: float = 8.0


def thumbnail(image: ImageType) -> np.ndarray:
    """RGB thumbnail of a path or a BGR array (grey if unreadable)."""
    img = None
    if isinstance(image, np.ndarray):
        img = image if image.ndim == 3 else np.repeat(image[..., None], 3, 2)
        img = img[..., :3][..., ::-1]
    elif osp.isfile(str(image)):
        try:
            img = mmcv.imread(str(image), channel_order='rgb')
        except Exception:  # noqa: B902 (a picture, not a check)
            img = None
    if img is None:
        return np.full(THUMB_HW + (3, ), 200, np.uint8)
    return mmcv.imresize(np.ascontiguousarray(img), (THUMB_HW[1], THUMB_HW[0]))


def short_name(path: str, width: int = 14) -> str:
    """The base name, cut to ``width`` characters."""
    name = osp.basename(path)
    return name if len(name) <= width else name[:width - 1] + '…'


def _frame(ax, color: str, width: float) -> None:
    """Coloured border around an image axis (ticks hidden, frame kept)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(width)


def draw_ranklist(rows: Sequence[RankRow],
                  out_file: str,
                  title: str = '',
                  cell_height: float = 2.6) -> np.ndarray:
    """Draw the rows, save the picture and return it.

    Each row: the query (blue frame, "query" above it, its label below),
    a gap, then the ranked gallery (``#1``, ``#2``... above, the item's
    label below, the item's frame). The title is wrapped to the width.
    PNGs are saved with a 256-colour palette (a picture of photos about
    half the size); other formats as matplotlib writes them.

    Args:
        rows (Sequence[RankRow]): One per query.
        out_file (str): Output image (format from the suffix); its folder
            is created.
        title (str): Figure title. Defaults to ''.
        cell_height (float): Height of a row in inches. Defaults to 2.6
            (a 2:1 thumbnail and two lines of text).

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB rendering of the picture.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    topk = max(len(row.gallery) for row in rows)
    num_rows, cols = len(rows), topk + 2  # query, spacer, top-k
    width = 1.1 * (topk + 1.3)
    # wrap the title to the figure width (about 13 characters an inch)
    lines = [
        part for line in title.splitlines()
        for part in textwrap.wrap(line, max(20, int(width * 13)))
    ]
    head = 0.3 + 0.2 * len(lines)  # inches above the first row
    foot = 0.5  # inches below the last row, for its labels
    height = cell_height * num_rows + head + foot
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(num_rows,
                            cols,
                            width_ratios=[1, 0.3] + [1] * topk,
                            wspace=0.08,
                            hspace=0.32,
                            left=0.01,
                            right=0.99,
                            bottom=foot / height,
                            top=1 - head / height)
    for r, row in enumerate(rows):
        ax = fig.add_subplot(grid[r, 0])
        ax.imshow(thumbnail(row.query), aspect='auto')
        _frame(ax, QUERY_COLOR, 5.0)
        ax.set_title('query', fontsize=9, fontweight='bold', pad=3)
        ax.set_xlabel(row.label, fontsize=row.label_size)
        for k, item in enumerate(row.gallery):
            ax = fig.add_subplot(grid[r, k + 2])
            ax.imshow(thumbnail(item.image), aspect='auto')
            _frame(ax, item.color, item.frame_width)
            ax.set_title(f'#{k + 1}', fontsize=8, pad=3)
            ax.set_xlabel(item.label, fontsize=7.5)
        fig.add_subplot(grid[r, 1]).axis('off')  # gap after the query
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


def draw_search_results(queries: list,
                        results: List[dict],
                        query_ids: Optional[Tuple[np.ndarray, np.ndarray]],
                        out_file: str,
                        title: Optional[str] = None) -> np.ndarray:
    """The picture of a gallery search (:class:`ReIDInferencer`).

    Each gallery image shows its rank and cosine score ``s``. When the
    queries' names and the gallery give person ids the frames are green
    (same id) or red (other id) and the cameras and ids are written;
    otherwise the frames are neutral and the file names are written.

    Args:
        queries (list): The query images (paths or BGR arrays), in the
            order of ``results``.
        results (list[dict]): Per query ``query``, ``paths``, ``scores``
            and, when the gallery has ids, ``pids`` / ``camids``.
        query_ids (tuple, optional): ``(pids, camids)`` of the queries
            (parsed from their names), or None.
        out_file (str): Output image (format from the suffix).
        title (str, optional): Figure title; None: a legend.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB rendering of the picture.
    """
    with_ids = query_ids is not None and all('pids' in r for r in results)
    if title is None:
        title = ('query (blue) and its gallery ranked by cosine similarity '
                 's' + ('; green = same id, red = other id (ids parsed from '
                        'the file names)' if with_ids else ''))
    rows = []
    for r, (query, res) in enumerate(zip(queries, results)):
        if not with_ids:
            rows.append(
                RankRow(query, short_name(res['query']), [
                    RankItem(path, f's={score:.3f}\n{short_name(path)}')
                    for path, score in zip(res['paths'], res['scores'])
                ], 7.5))
            continue
        qpid, qcam = int(query_ids[0][r]), int(query_ids[1][r])
        hits = sum(p == qpid for p in res['pids'])
        rows.append(
            RankRow(
                query, f'id {qpid}  cam {qcam + 1}\n'
                f'{hits}/{len(res["pids"])} same id', [
                    RankItem.matched(
                        path, f's={score:.3f}\ncam {camid + 1}  id {pid}',
                        pid == qpid) for path, score, pid, camid in zip(
                            res['paths'], res['scores'], res['pids'],
                            res['camids'])
                ]))
    return draw_ranklist(rows,
                         out_file,
                         title,
                         cell_height=2.6 if with_ids else 2.45)


__all__ = [
    'MATCH_COLOR', 'MISMATCH_COLOR', 'NEUTRAL_COLOR', 'QUERY_COLOR',
    'RankItem', 'RankRow', 'THUMB_HW', 'draw_ranklist',
    'draw_search_results', 'short_name', 'thumbnail'
]
