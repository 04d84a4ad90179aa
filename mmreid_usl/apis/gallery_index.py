# Copyright (c) mmreid_usl contributors. All rights reserved.
"""An embedded gallery: features + image paths, top-k search, save / load."""
import json
import logging
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log

from mmreid_usl.evaluation.functional import k_reciprocal_rerank
from mmreid_usl.utils.search import (build_faiss_index, resolve_backend,
                                     rows_per_chunk, topk_rows, topk_search)

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Version of the ``.npz`` layout written by :meth:`GalleryIndex.save`.
INDEX_FORMAT_VERSION = 1


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

    :meth:`search` owns both kinds of search:

    - plain: the cosine top-k, by :func:`mmreid_usl.utils.search.topk_search`
      (``metric='inner_product'``) on one of its backends: ``'faiss'``
      (``faiss.IndexFlatIP``, exact, built once per index), ``'torch'``
      (``torch.mm`` + ``torch.topk`` in query chunks on the queries' device,
      CPU or GPU) or ``'auto'`` (faiss for CPU queries when it is
      importable, else torch);
    - re-ranked (``rerank=``): the top-k of the k-reciprocal re-ranked
      distance of Zhong et al., *Re-ranking Person Re-identification with
      k-reciprocal Encoding*, CVPR 2017 (https://arxiv.org/abs/1701.08398),
      as :func:`mmreid_usl.evaluation.functional.k_reciprocal_rerank`
      computes it: the queries and the whole gallery form one set, so the
      cost grows with ``(Q + N)^2`` (a kNN pass over all pairs). The
      distance ``d* = (1 - λ) d_J + λ d̃`` lies in ``[0, 1]``; the score is
      ``1 - d*``.

    Args:
        features (np.ndarray | Tensor): ``(N, D)`` features, ``N >= 1``.
            Stored as CPU float32.
        paths (Sequence[str]): ``N`` image paths (or names).
        pids (array-like, optional): ``N`` person ids parsed from the names.
        camids (array-like, optional): ``N`` 0-based camera ids.
        meta (dict, optional): JSON-serialisable provenance (config,
            checkpoint, encoder...). Defaults to ``{}``.
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
    def _query(self, query: ArrayLike) -> torch.Tensor:
        """``(Q, D)`` float32 queries; raises naming a dimension mismatch."""
        q = query.detach() if isinstance(query, torch.Tensor) else \
            torch.from_numpy(np.asarray(query))
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2 or q.shape[1] != self.feat_dim:
            raise ValueError(
                f'query features must be (Q, {self.feat_dim}) to match the '
                f'gallery, got shape {tuple(q.shape)} (was the gallery '
                'built with another model?).')
        return q.float().contiguous()

    def _features_on(self, device: torch.device) -> torch.Tensor:
        """The features on ``device`` (copied once per device)."""
        key = str(device)
        if key not in self._device_feats:
            self._device_feats[key] = self.features.to(device)
        return self._device_feats[key]

    @torch.no_grad()
    def search(
        self,
        query: ArrayLike,
        topk: int = 10,
        backend: str = 'auto',
        chunk_size: Optional[int] = None,
        rerank: Union[bool, dict, None] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``topk`` best gallery rows of every query.

        Args:
            query (np.ndarray | Tensor): ``(Q, D)`` L2-normalised query
                features (a ``(D, )`` vector is one query).
            topk (int): Results per query; more than the gallery size gives
                the whole gallery.
            backend (str): ``'auto'``, ``'faiss'`` or ``'torch'`` (plain
                search).
            chunk_size (int, optional): Queries per chunk of the torch
                backend. Defaults to about ``2**24 / N``.
            rerank (bool | dict, optional): k-reciprocal re-ranking: True
                with the paper's ``k1=20, k2=6, lambda_value=0.3``, or a
                dict of arguments of
                :func:`~mmreid_usl.evaluation.functional.k_reciprocal_rerank`
                (an empty dict is the defaults). None / False: the plain
                cosine search. Defaults to None.

        Returns:
            tuple[Tensor, Tensor]: ``scores`` float32 ``(Q, k)``, highest
            first (cosine; with ``rerank``, ``1 - d*``), and ``indices``
            int64 ``(Q, k)`` into :attr:`paths`, on CPU.

        Raises:
            ValueError: ``topk < 1``, an unknown backend, or queries of
                another dimension.
        """
        if topk < 1:
            raise ValueError(f'topk must be >= 1, got {topk}.')
        q = self._query(query)
        k = min(topk, len(self))
        if rerank is not None and rerank is not False:
            cfg = {} if rerank is True else dict(rerank)
            dist = k_reciprocal_rerank(q.cpu(), self.features, **cfg)
            d, indices = topk_rows(dist,
                                   q.shape[0],
                                   k,
                                   largest=False,
                                   chunk_size=rows_per_chunk(len(self)))
            return 1 - d, indices
        resolved = resolve_backend(backend, q)
        if q.shape[0] == 0:
            return (torch.zeros(0, k), torch.zeros(0, k, dtype=torch.long))
        faiss_index = None
        if resolved == 'faiss' and not q.is_cuda:
            if self._faiss_index is None:
                self._faiss_index = build_faiss_index(
                    self.features, 'inner_product')
            faiss_index = self._faiss_index
        scores, indices = topk_search(q,
                                      self._features_on(q.device),
                                      k,
                                      metric='inner_product',
                                      backend=backend,
                                      chunk_size=chunk_size,
                                      faiss_index=faiss_index)
        return scores.cpu(), indices.cpu()

    def to_results(self, queries: Sequence[str], scores: torch.Tensor,
                   indices: torch.Tensor) -> List[dict]:
        """The JSON-friendly results of :meth:`search`.

        Args:
            queries (Sequence[str]): The query names, in order.
            scores (Tensor): ``(Q, k)`` scores of :meth:`search`.
            indices (Tensor): ``(Q, k)`` indices of :meth:`search`.

        Returns:
            list[dict]: Per query ``query``, ``paths``, ``scores`` and
            ``indices`` of the ranked gallery, best first, plus ``pids`` /
            ``camids`` when the index has ids.
        """
        results = []
        for name, sc, ix in zip(queries, scores.tolist(), indices.tolist()):
            res = dict(query=name,
                       paths=[self.paths[j] for j in ix],
                       scores=[float(s) for s in sc],
                       indices=[int(j) for j in ix])
            if self.pids is not None:
                res['pids'] = [int(self.pids[j]) for j in ix]
                res['camids'] = [int(self.camids[j]) for j in ix]
            results.append(res)
        return results

    def warn_if_other_model(self, meta: Dict) -> None:
        """Warn when :attr:`meta` names another config, checkpoint or
        encoder than ``meta`` (compared by base name): its features may not
        be comparable with the queries'. An index saved before the rename
        has its encoder under ``feat_source``."""
        for key in ('config', 'checkpoint', 'encoder'):
            theirs = self.meta.get(key)
            if key == 'encoder' and theirs is None:
                theirs = self.meta.get('feat_source')
            if theirs and meta.get(key) and osp.basename(
                    str(theirs)) != osp.basename(str(meta[key])):
                print_log(
                    f'the gallery index was built with {key}={theirs!r}, '
                    f'this inferencer uses {meta[key]!r}; its features may '
                    'not be comparable.',
                    logger='current',
                    level=logging.WARNING)

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
