# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Search plain image folders with a trained ReID model.

The inferencer follows mmpretrain's split: the model zoo is
:mod:`mmreid_usl.apis.model_zoo`, the input images are
:mod:`mmreid_usl.apis.image_inputs`, the search is
:class:`~mmreid_usl.apis.GalleryIndex` and the picture is
:mod:`mmreid_usl.visualization.ranklist`; :class:`ReIDInferencer` runs the
``preprocess`` → ``forward`` → ``visualize`` → ``postprocess`` flow.
"""
import logging
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmpretrain.apis import BaseInferencer
from torch.utils.data import DataLoader

import mmreid_usl
from mmreid_usl.utils.deprecation import renamed_kwargs
from mmreid_usl.visualization.ranklist import draw_search_results
from .gallery_index import GalleryIndex, parse_reid_names
from .image_inputs import (InputDataset, InputType, ReIDInputPipeline,
                           check_images, collate_readable, collect_features,
                           config_name_pattern, image_names, list_images)
from .model_zoo import get_model, list_models

ModelType = Union[BaseModel, str, Path, Config]


class ReIDInferencer(BaseInferencer):
    """Embed person images and search a gallery with a trained ReID model.

    mmpretrain's inferencer flow (``preprocess`` → ``forward`` →
    ``visualize`` → ``postprocess``, keyword dispatch, ``list_models``). The
    model comes from :func:`~mmreid_usl.apis.model_zoo.get_model`; its
    checkpoint must fit the encoder that gives the features (checked once,
    by :func:`~mmreid_usl.apis.init_model`; the ``ValueError`` names the
    missing / unexpected / mis-shaped keys). Images (paths, BGR ``uint8``
    arrays, folders searched recursively: :mod:`~mmreid_usl.apis.
    image_inputs`) go through the config's test pipeline; the feature is the
    model's ``predict`` output, the L2-normalised feature of
    ``test_cfg.encoder`` that evaluation uses. The gallery
    (:class:`GalleryIndex`) is ranked by cosine similarity ``q · g`` (the
    ranking of evaluation's ``||q - g||² = 2 - 2 q · g``) or, with
    ``rerank=True``, by the k-reciprocal re-ranked distance
    (:meth:`GalleryIndex.search`).

    Unreadable images: a **gallery** image that cannot be read or decoded
    is **skipped with a warning naming it** (none readable is an error); a
    **query** that cannot be read is an **error** naming the file; so is a
    folder that does not exist or holds no image file.

    Args:
        model (BaseModel | str | Path | Config): Config file or object, a
            model-zoo name (:meth:`list_models`), or a built model.
        pretrained (str | bool | None): Checkpoint file. ``True`` takes the
            model zoo's weights for a model-zoo name; ``None`` / ``False``
            keep the built weights (a random initialisation for a config:
            a warning is logged). Defaults to None.
        device (str | torch.device, optional): Defaults to ``'cuda'`` when
            available, else ``'cpu'``.
        gallery (str | Sequence | GalleryIndex, optional): Folder(s) or
            images to embed, a saved index (``.npz``), or an index.
            Defaults to None (call :meth:`set_gallery` later).
        encoder (str, optional): ``'student'`` / ``'momentum'``; defaults
            to the config's ``model.test_cfg.encoder`` (``feat_source`` is
            its deprecated name).
        batch_size (int): Images per forward pass. Defaults to 32.
        num_workers (int): Data-loading worker processes. Defaults to 0.
        backend (str): Search backend, ``'auto'``, ``'faiss'`` or
            ``'torch'``. Defaults to ``'auto'``.
        name_pattern (str): Regex (pid, camera) used to attach ids parsed
            from gallery names when every name matches. Defaults to the
            config's test dataset ``name_pattern`` or ``r'([-\\d]+)_c(\\d+)'``.
        rerank_cfg (dict, optional): Arguments of
            :func:`mmreid_usl.evaluation.functional.k_reciprocal_rerank`
            used by ``rerank=True`` (``k1``, ``k2``, ``lambda_value``;
            default the paper's 20, 6, 0.3).
        cfg_options (dict, optional): Config overrides.

    Example:
        >>> from mmreid_usl.apis import ReIDInferencer
        >>> inferencer = ReIDInferencer(
        ...     'configs/cluster_contrast/cluster-contrast_mbv2_cuhk03.py',
        ...     pretrained='cc_mbv2_cuhk03.pth', gallery='camera_crops/')
        >>> inferencer('person.jpg', topk=5)[0]['paths']
        >>> inferencer.gallery.save('gallery.npz')  # embed once, reuse
    """

    preprocess_kwargs: set = {'num_workers'}
    forward_kwargs: set = {'topk', 'rerank'}
    visualize_kwargs: set = {'out_file', 'title'}
    postprocess_kwargs: set = set()

    @renamed_kwargs(feat_source='encoder')
    def __init__(self,
                 model: ModelType,
                 pretrained: Union[str, bool, None] = None,
                 device: Union[str, torch.device, None] = None,
                 gallery: Union[str, Sequence, GalleryIndex, None] = None,
                 encoder: Optional[str] = None,
                 batch_size: int = 32,
                 num_workers: int = 0,
                 backend: str = 'auto',
                 name_pattern: Optional[str] = None,
                 rerank_cfg: Optional[dict] = None,
                 cfg_options: Optional[dict] = None) -> None:
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        # init_model checks once that the checkpoint fits the encoder
        model, checkpoint = get_model(model, pretrained, device, encoder,
                                      cfg_options)
        self.checkpoint: Optional[str] = checkpoint
        cfg = model.cfg
        # what BaseInferencer.__init__ sets; it is not called because it
        # builds models by name with mmpretrain's hub and reads the private
        # ``model._config``, while ours come from get_model
        self.config = cfg
        self.model = model
        self.pipeline = self._init_pipeline(cfg)
        self.visualizer = None
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.backend = backend
        self.name_pattern = name_pattern if name_pattern is not None else \
            config_name_pattern(cfg)
        self.rerank_cfg = dict(rerank_cfg or {})
        self._gallery: Optional[GalleryIndex] = None
        if gallery is not None:
            self.set_gallery(gallery)

    def _init_pipeline(self, cfg: Config) -> ReIDInputPipeline:
        """The config's test pipeline, its loading step split off."""
        return ReIDInputPipeline.from_config(cfg)

    def _inputs_to_list(self, inputs: InputType) -> list:
        """Flatten inputs (:func:`~mmreid_usl.apis.image_inputs.list_images`:
        folders are expanded recursively, sorted)."""
        return list_images(inputs)

    def check_inputs(self, inputs: InputType) -> int:
        """Read every input through the test pipeline without embedding
        (:func:`~mmreid_usl.apis.image_inputs.check_images`): a bad query is
        named before a (long) gallery embedding.

        Returns:
            int: The number of images.
        """
        return check_images(self._inputs_to_list(inputs), self.pipeline)

    def preprocess(self,
                   inputs: list,
                   batch_size: Optional[int] = None,
                   num_workers: Optional[int] = None,
                   skip_unreadable: bool = False) -> DataLoader:
        """A loader of ``(batch or None, num_items, unreadable)`` tuples
        (:func:`~mmreid_usl.apis.image_inputs.collate_readable`; samples
        carry ``sample_idx``, the input's position, and ``img_path``)."""
        dataset = InputDataset(inputs, image_names(inputs), self.pipeline,
                               skip_unreadable)
        return DataLoader(dataset,
                          batch_size=batch_size or self.batch_size,
                          shuffle=False,
                          num_workers=self.num_workers
                          if num_workers is None else num_workers,
                          collate_fn=collate_readable)

    @torch.no_grad()
    def forward(self, data: dict, **kwargs) -> list:
        """``model.test_step``: samples with L2-normalised ``pred_feature``."""
        return self.model.test_step(data)

    def embed(
            self,
            inputs: InputType,
            batch_size: Optional[int] = None,
            num_workers: Optional[int] = None,
            skip_unreadable: bool = False,
            show_progress: Optional[bool] = True
    ) -> Tuple[torch.Tensor, List[str], list]:
        """L2-normalised features of images, folders or arrays.

        Args:
            inputs: Paths, folders (recursive), arrays, or a list of them.
            batch_size, num_workers (int, optional): Default to the
                inferencer's.
            skip_unreadable (bool): Skip images that cannot be read (a
                warning names each) instead of raising. Defaults to False.
            show_progress (bool, optional): Show a progress bar; None: when
                there is more than one batch. Defaults to True.

        Returns:
            tuple: ``features`` (float32 ``(n, D)``, CPU), the ``names``
            (paths; ``'<array i>'`` for arrays) of the embedded images in
            input order, and the ``items`` they came from.

        Raises:
            ValueError: No input, or (``skip_unreadable``) none readable.
        """
        items = self._inputs_to_list(inputs)
        if not items:
            raise ValueError('no image to embed (empty input).')
        names = image_names(items)
        loader = self.preprocess(items, batch_size, num_workers,
                                 skip_unreadable)
        if show_progress is None:
            show_progress = len(items) > (batch_size or self.batch_size)
        # a model evaluated on raw features (test_cfg.normalize=False, e.g.
        # Theory's configs) is still searched by cosine here
        feats, unreadable = collect_features(
            loader, self.forward, len(items),
            not self.model.test_cfg.get('normalize', True), show_progress)
        for u in unreadable:
            print_log(f'skipped unreadable image {u.name}: {u.reason}',
                      logger='current',
                      level=logging.WARNING)
        keep = [i for i, f in enumerate(feats) if f is not None]
        if not keep:
            first = unreadable[0] if unreadable else None
            raise ValueError(
                f'none of the {len(items)} images could be read' +
                (f' (first: {first.name}: {first.reason})' if first else '') +
                '.')
        if unreadable:
            print_log(
                f'{len(unreadable)} of {len(items)} images skipped '
                '(unreadable).',
                logger='current',
                level=logging.WARNING)
        return (torch.stack([feats[i] for i in keep]),
                [names[i] for i in keep], [items[i] for i in keep])

    def _meta(self) -> dict:
        """Where gallery features come from (``GalleryIndex.meta``)."""
        return dict(config=str(getattr(self.config, 'filename', None) or ''),
                    checkpoint=self.checkpoint or '',
                    encoder=self.model.test_cfg.get('encoder', 'student'),
                    mmreid_usl_version=mmreid_usl.__version__)

    def build_gallery(self,
                      inputs: InputType,
                      batch_size: Optional[int] = None,
                      num_workers: Optional[int] = None,
                      name_pattern: Optional[str] = None,
                      show_progress: bool = True) -> GalleryIndex:
        """Embed a gallery (unreadable images skipped with a warning);
        person / camera ids parsed from the file names with ``name_pattern``
        are attached when every name matches.

        Returns:
            GalleryIndex: The gallery; ``meta`` records the config,
            checkpoint and encoder.
        """
        feats, names, _ = self.embed(inputs,
                                     batch_size=batch_size,
                                     num_workers=num_workers,
                                     skip_unreadable=True,
                                     show_progress=show_progress)
        name_pattern = name_pattern or self.name_pattern
        ids = parse_reid_names(names, name_pattern)
        pids, camids = ids if ids is not None else (None, None)
        meta = dict(self._meta(), name_pattern=name_pattern)
        return GalleryIndex(feats, names, pids, camids, meta=meta)

    def set_gallery(self, gallery: Union[str, Path, Sequence,
                                         GalleryIndex]) -> GalleryIndex:
        """Use a gallery: an index, a saved index (``.npz``) or images.

        An index built with another config, checkpoint or encoder
        (its ``meta``) gives a warning; one of another feature dimension
        makes :meth:`search` raise ``ValueError``.
        """
        if isinstance(gallery, GalleryIndex):
            index = gallery
        elif isinstance(gallery,
                        (str, Path)) and str(gallery).endswith('.npz'):
            index = GalleryIndex.load(str(gallery))
        else:
            index = self.build_gallery(gallery)
        index.warn_if_other_model(self._meta())
        self._gallery = index
        return index

    @property
    def gallery(self) -> Optional[GalleryIndex]:
        """The current :class:`GalleryIndex` (None until one is set)."""
        return self._gallery

    def search(self,
               query_feats: torch.Tensor,
               topk: int = 10,
               rerank: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`GalleryIndex.search` of the gallery with the inferencer's
        ``backend`` and (``rerank=True``) ``rerank_cfg``.

        Returns:
            tuple[Tensor, Tensor]: ``scores`` ``(Q, k)``, highest first
            (cosine; re-ranked: ``1 - d*``), and gallery ``indices``.

        Raises:
            RuntimeError: No gallery is set.
        """
        if self._gallery is None:
            raise RuntimeError('no gallery to search: pass gallery= to '
                               'ReIDInferencer or call set_gallery().')
        return self._gallery.search(query_feats.to(self.device),
                                    topk,
                                    backend=self.backend,
                                    rerank=self.rerank_cfg if rerank else None)

    def __call__(self,
                 inputs: InputType,
                 return_datasamples: bool = False,
                 batch_size: Optional[int] = None,
                 **kwargs) -> Union[list, dict]:
        """Embed the queries and rank the gallery for each.

        Args:
            inputs: Query paths, folders, arrays or a list of them.
            return_datasamples (bool): Return the raw tensors,
                ``dict(features, scores, indices, queries, visualization)``,
                instead of the JSON-friendly list. Defaults to False.
            batch_size (int, optional): Defaults to the inferencer's.
            topk (int): Gallery results per query. Defaults to 10.
            rerank (bool): k-reciprocal re-ranking. Defaults to False.
            num_workers (int): Loader workers.
            out_file (str): Save the picture (queries and their top-k).
            title (str): Title of the picture.

        Returns:
            list[dict]: Per query ``query`` (its path or ``'<array i>'``),
            ``paths``, ``scores`` (cosine) and ``indices`` of the ranked
            gallery, nearest first (plus ``pids`` / ``camids`` when the
            gallery has ids).
        """
        pre, fwd, vis, post = self._dispatch_kwargs(**kwargs)
        feats, names, items = self.embed(inputs,
                                         batch_size=batch_size,
                                         skip_unreadable=False,  # queries
                                         show_progress=None,
                                         **pre)
        scores, indices = self.search(feats,
                                      topk=fwd.get('topk', 10),
                                      rerank=fwd.get('rerank', False))
        results = self._gallery.to_results(names, scores, indices)
        visualization = self.visualize(items, results, **vis)
        if return_datasamples:
            return dict(features=feats,
                        scores=scores,
                        indices=indices,
                        queries=names,
                        visualization=visualization)
        return self.postprocess(results, visualization, **post)

    def visualize(self,
                  ori_inputs: list,
                  preds: List[dict],
                  out_file: Optional[str] = None,
                  title: Optional[str] = None) -> Optional[List[np.ndarray]]:
        """Draw one row per query, then its top-k gallery images (frames
        green / red when query and gallery names give person ids,
        :func:`~mmreid_usl.visualization.draw_search_results`).

        Returns:
            list[np.ndarray] | None: The RGB picture (one array), or None
            when ``out_file`` is not given.
        """
        if out_file is None:
            return None
        query_ids = parse_reid_names([p['query'] for p in preds],
                                     self.name_pattern)
        img = draw_search_results(ori_inputs, preds, query_ids, out_file,
                                  title)
        print_log(f'Search picture saved to {out_file}', logger='current')
        return [img]

    def postprocess(self,
                    preds: List[dict],
                    visualization: Optional[List[np.ndarray]],
                    return_datasamples: bool = False,
                    **kwargs) -> List[dict]:
        """The per-query result dicts (already JSON-serialisable)."""
        return preds

    @staticmethod
    def list_models(pattern: Optional[str] = None) -> List[str]:
        """Model-zoo names, e.g. ``pattern='*cuhk03*'`` (:func:`~mmreid_usl.
        apis.list_models`)."""
        return list_models(pattern)


__all__ = ['ReIDInferencer']
