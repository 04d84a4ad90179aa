# Copyright (c) mmreid_usl contributors. All rights reserved.
"""An embedded gallery: features + image paths, cosine top-k, save / load."""
import json
import logging
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Version of the ``.npz`` layout written by :meth:`GalleryIndex.save`.
INDEX_FORMAT_VERSION = 1


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        return False
    return True


def parse_reid_names(
        paths: Sequence[str],
        name_pattern: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Person and camera ids from file names, when every name has them.

    The pattern's first group is the person id and its second the 1-based
    camera, searched in the base name as ``ReIDFolderDataset`` does; the
    returned ``camids`` are 0-based (camera - 1) like the datasets'.

    Args:
        paths (Sequence[str]): Image paths.
        name_pattern (str): Regex with two groups (pid, camera), e.g.
            ``r'([-\\d]+)_c(\\d+)'`` (Market-1501 / CUHK03 names).

    Returns:
        tuple[np.ndarray, np.ndarray] | None: ``(pids, camids)`` (int64), or
        None when at least one name does not match (a partial labelling
        would be ambiguous, so none is returned).
    """
    regex = re.compile(name_pattern)
    if regex.groups < 2:
        raise ValueError('name_pattern needs two groups (pid, camera), got '
                         f'{name_pattern!r}.')
    pids, camids = [], []
    for path in paths:
        match = regex.search(osp.basename(str(path)))
        if match is None:
            return None
        pids.append(int(match.group(1)))
        camids.append(int(match.group(2)) - 1)
    return np.asarray(pids, np.int64), np.asarray(camids, np.int64)


class GalleryIndex:
    """L2-normalised gallery features with the image each row came from.

    The index is exact (brute force): row ``j`` of ``features`` is the
    embedding of ``paths[j]``, and a query ``q`` ranks the gallery by the
    cosine similarity :math:`s(q, g_j) = q \\cdot g_j` (features are unit
    vectors), highest first. Because both are unit vectors this is the
    ordering of the squared Euclidean distance
    :math:`\\|q - g_j\\|^2 = 2 - 2\\, q \\cdot g_j` that the evaluation
    (:func:`mmreid_usl.evaluation.evaluate_rank`) uses. A flat index *is*
    its features, so :meth:`save` writes them (an ``.npz`` readable by
    ``numpy.load(allow_pickle=False)``) and :meth:`load` returns an index
    that gives bit-identical results; faiss structures are rebuilt on use.

    Search backends (the two of :mod:`mmreid_usl.clustering.knn`):

    - ``'faiss'``: ``faiss.IndexFlatIP`` (CPU; exact inner product).
    - ``'torch'``: ``torch.mm`` + ``torch.topk`` in query chunks on the
      queries' device (CPU or GPU).
    - ``'auto'``: faiss for CPU queries when it is importable, else torch.

    Args:
        features (np.ndarray | Tensor): ``(N, D)`` features, ``N >= 1``.
            Stored as CPU float32.
        paths (Sequence[str]): ``N`` image paths (or names).
        pids (array-like, optional): ``N`` person ids parsed from the names.
        camids (array-like, optional): ``N`` 0-based camera ids.
        meta (dict, optional): JSON-serialisable provenance (config,
            checkpoint, feature source...). Defaults to ``{}``.
        normalize (bool): L2-normalise the rows. When False (default) the
            rows must already be unit vectors (checked to 1e-3) and are
            stored unchanged, so features round-trip bit-identically.

    Raises:
        ValueError: Empty gallery, wrong shapes or lengths, non-finite or
            (with ``normalize=False``) non-unit features.
    """

    def __init__(self,
                 features: ArrayLike,
                 paths: Sequence[str],
                 pids: Optional[ArrayLike] = None,
                 camids: Optional[ArrayLike] = None,
                 meta: Optional[Dict] = None,
                 normalize: bool = False) -> None:
        feats = torch.as_tensor(
            np.asarray(features)
            if not isinstance(features, torch.Tensor) else features.detach())
        feats = feats.to('cpu', torch.float32).contiguous()
        if feats.ndim != 2:
            raise ValueError('GalleryIndex: features must be (N, D), got '
                             f'shape {tuple(feats.shape)}.')
        if feats.shape[0] == 0:
            raise ValueError('GalleryIndex: the gallery is empty (0 '
                             'features).')
        paths = [str(p) for p in paths]
        if len(paths) != feats.shape[0]:
            raise ValueError(f'GalleryIndex: {feats.shape[0]} features but '
                             f'{len(paths)} paths.')
        if not torch.isfinite(feats).all():
            raise ValueError('GalleryIndex: features contain NaN or inf.')
        if normalize:
            feats = torch.nn.functional.normalize(feats, dim=1)
        else:
            norms = feats.norm(dim=1)
            bad = torch.nonzero((norms - 1).abs() > 1e-3).flatten()
            if bad.numel():
                raise ValueError(
                    'GalleryIndex: features must be L2-normalised (cosine '
                    f'search); row {int(bad[0])} ({paths[int(bad[0])]}) has '
                    f'norm {float(norms[bad[0]]):.4f}. Pass normalize=True.')
        self.features = feats
        self.paths: List[str] = paths
        self.pids = self._ids(pids, 'pids')
        self.camids = self._ids(camids, 'camids')
        self.meta: Dict = dict(meta or {})
        self._faiss_index = None
        self._device_feats: Dict[str, torch.Tensor] = {}

    def _ids(self, ids: Optional[ArrayLike],
             name: str) -> Optional[np.ndarray]:
        if ids is None:
            return None
        arr = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids,
                         np.int64)
        if arr.shape != (len(self), ):
            raise ValueError(f'GalleryIndex: {name} must have shape '
                             f'({len(self)}, ), got {arr.shape}.')
        return arr

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def feat_dim(self) -> int:
        """Feature dimension ``D``."""
        return self.features.shape[1]

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_images={len(self)}, '
                f'feat_dim={self.feat_dim}, '
                f'ids={"yes" if self.pids is not None else "no"})')

    # ------------------------------------------------------------------
    # search
    def _resolve_backend(self, backend: str, query: torch.Tensor) -> str:
        if backend not in ('auto', 'faiss', 'torch'):
            raise ValueError("backend must be 'auto', 'faiss' or 'torch', "
                             f'got {backend!r}')
        if backend == 'auto':
            return 'faiss' if (not query.is_cuda
                               and _faiss_available()) else 'torch'
        if backend == 'faiss' and not _faiss_available():
            raise ImportError("backend='faiss' needs faiss "
                              '(pip install faiss-cpu).')
        return backend

    def _search_faiss(self, query: torch.Tensor,
                      k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        import faiss
        if self._faiss_index is None:
            index = faiss.IndexFlatIP(self.feat_dim)
            index.add(self.features.numpy())
            self._faiss_index = index
        scores, idx = self._faiss_index.search(
            np.ascontiguousarray(query.cpu().numpy()), k)
        return torch.from_numpy(scores), torch.from_numpy(idx).long()

    def _search_torch(
            self, query: torch.Tensor, k: int,
            chunk_size: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        key = str(query.device)
        gallery = self._device_feats.get(key)
        if gallery is None:
            gallery = self.features.to(query.device)
            self._device_feats[key] = gallery
        if chunk_size is None:
            # about 64 MiB of float32 similarities per chunk
            chunk_size = max(1, (1 << 24) // len(self))
        scores, indices = [], []
        for s in range(0, query.shape[0], chunk_size):
            sim = torch.mm(query[s:s + chunk_size], gallery.t())
            sc, ix = torch.topk(sim, k, dim=1, largest=True, sorted=True)
            scores.append(sc)
            indices.append(ix)
        return torch.cat(scores).cpu(), torch.cat(indices).cpu()

    @torch.no_grad()
    def search(
            self,
            query: ArrayLike,
            topk: int = 10,
            backend: str = 'auto',
            chunk_size: Optional[int] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``topk`` most similar gallery rows of every query.

        Args:
            query (np.ndarray | Tensor): ``(Q, D)`` L2-normalised query
                features (a ``(D, )`` vector is one query).
            topk (int): Results per query; more than the gallery size gives
                the whole gallery.
            backend (str): ``'auto'``, ``'faiss'`` or ``'torch'``.
            chunk_size (int, optional): Queries per chunk of the torch
                backend. Defaults to about ``2**24 / N``.

        Returns:
            tuple[Tensor, Tensor]: ``scores`` float32 ``(Q, k)`` (cosine,
            descending) and ``indices`` int64 ``(Q, k)`` into
            :attr:`paths`, on CPU.
        """
        if topk < 1:
            raise ValueError(f'topk must be >= 1, got {topk}.')
        q = query.detach() if isinstance(query, torch.Tensor) else \
            torch.from_numpy(np.asarray(query))
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2 or q.shape[1] != self.feat_dim:
            raise ValueError(
                f'query features must be (Q, {self.feat_dim}) to match the '
                f'gallery, got shape {tuple(q.shape)} (was the gallery '
                'built with another model?).')
        q = q.float().contiguous()
        k = min(topk, len(self))
        if q.shape[0] == 0:
            return (torch.zeros(0, k), torch.zeros(0, k, dtype=torch.long))
        if self._resolve_backend(backend, q) == 'faiss':
            return self._search_faiss(q, k)
        return self._search_torch(q, k, chunk_size)

    # ------------------------------------------------------------------
    # persistence
    def save(self, path: str) -> str:
        """Write the index to ``path`` (``.npz``; the suffix is added).

        Keys: ``features`` (float32 ``(N, D)``), ``paths`` (unicode),
        ``pids`` and ``camids`` (int64, only when known), ``meta`` (a JSON
        string) and ``format_version``. Nothing is pickled.

        Returns:
            str: The file written.
        """
        path = str(path)
        if not path.endswith('.npz'):
            path += '.npz'
        out_dir = osp.dirname(osp.abspath(path))
        os.makedirs(out_dir, exist_ok=True)
        arrays = dict(features=self.features.numpy(),
                      paths=np.asarray(self.paths, dtype=np.str_),
                      meta=np.asarray(json.dumps(self.meta, sort_keys=True)),
                      format_version=np.asarray(INDEX_FORMAT_VERSION))
        if self.pids is not None:
            arrays['pids'] = self.pids
        if self.camids is not None:
            arrays['camids'] = self.camids
        np.savez(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str) -> 'GalleryIndex':
        """Read an index written by :meth:`save` (or ``extract_features.py``).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: The file is not such an index (names what is
                missing).
        """
        path = str(path)
        if not osp.isfile(path):
            raise FileNotFoundError(f'gallery index {path!r} does not exist.')
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: B902 (zip / format errors vary)
            raise ValueError(
                f'cannot read gallery index {path!r} (not an '
                f'.npz written by GalleryIndex.save): {e!r}') from e
        with data:
            missing = [k for k in ('features', 'paths') if k not in data]
            if missing:
                raise ValueError(f'{path!r} is not a gallery index: no '
                                 f'{missing} array(s).')
            version = int(data['format_version']) \
                if 'format_version' in data else INDEX_FORMAT_VERSION
            if version > INDEX_FORMAT_VERSION:
                raise ValueError(f'{path!r} has index format {version}; this '
                                 f'version reads up to '
                                 f'{INDEX_FORMAT_VERSION}.')
            meta = json.loads(str(data['meta'])) if 'meta' in data else {}
            index = cls(data['features'],
                        data['paths'].tolist(),
                        pids=data['pids'] if 'pids' in data else None,
                        camids=data['camids'] if 'camids' in data else None,
                        meta=meta)
        print_log(f'Loaded gallery index {path}: {index!r}',
                  logger='current',
                  level=logging.INFO)
        return index


__all__ = ['GalleryIndex', 'parse_reid_names']
