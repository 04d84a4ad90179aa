# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Search plain image folders with a trained ReID model."""
import difflib
import fnmatch
import logging
import os.path as osp
from collections import namedtuple
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, default_collate
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar, scandir
from mmpretrain.apis import BaseInferencer
from torch.utils.data import DataLoader, Dataset

import mmreid_usl
from mmreid_usl.registry import TRANSFORMS
from mmreid_usl.utils import register_all_modules
from mmreid_usl.utils.checkpoint_fit import check_checkpoint_fits

from .gallery_index import GalleryIndex, parse_reid_names
from .inference import init_model

ModelType = Union[BaseModel, str, Path, Config]
InputType = Union[str, Path, np.ndarray, Sequence]

#: Image suffixes collected from folders (case-insensitive).
IMG_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: Default file-name pattern for pid / camera parsing (Market-1501 style).
DEFAULT_NAME_PATTERN = r'([-\d]+)_c(\d+)'
#: Transform types that read the image file (replaced for array inputs).
_LOADERS = ('LoadReIDImage', 'LoadImageFromFile')
#: An input the pipeline could not read (kept picklable for workers).
_Unreadable = namedtuple('_Unreadable', ['index', 'name', 'reason'])


def _repo_model_index() -> Optional[str]:
    """``model-index.yml`` of the installed package (repository or .mim)."""
    pkg = osp.dirname(osp.abspath(mmreid_usl.__file__))
    for cand in (osp.join(pkg, '.mim', 'model-index.yml'),
                 osp.join(osp.dirname(pkg), 'model-index.yml')):
        if osp.isfile(cand):
            return cand
    return None


def _load_model_zoo() -> Dict[str, dict]:
    """Model name (lower case) -> ``dict(name, config, weights, results)``.

    Read with ``modelindex`` (the library mmpretrain's model hub uses); the
    configs of the metafiles are relative to the model index's folder.
    """
    path = _repo_model_index()
    if path is None:
        raise FileNotFoundError(
            'model-zoo names need model-index.yml, which this installation '
            'of mmreid_usl lacks; pass a config file instead.')
    from modelindex.load_model_index import load
    index = load(path)
    index.build_models_with_collections()
    root = osp.dirname(path)
    zoo = {}
    for model in index.models:
        config = model.config
        if config is not None and not osp.isabs(config):
            config = osp.join(root, config)
        zoo[model.name.lower()] = dict(
            name=model.name,
            config=config,
            weights=model.weights,
            results=[r.data for r in model.results] if model.results else [])
    return zoo


def _as_bgr(img: np.ndarray, name: str) -> np.ndarray:
    """An HWC uint8 BGR image from an array input (gray is expanded)."""
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f'{name}: an image array must be (H, W), (H, W, 3) '
                         f'or (H, W, 4), got shape {img.shape}.')
    if img.shape[2] == 4:
        img = img[..., :3]  # drop alpha
    if img.dtype != np.uint8:
        raise ValueError(f'{name}: image arrays must be uint8 (BGR, as '
                         f'mmcv.imread returns), got {img.dtype}.')
    return np.ascontiguousarray(img)


class _ReIDInputPipeline:
    """Load a path or take an array, then run the config's test pipeline."""

    def __init__(self, loader: Callable, transforms: Callable) -> None:
        self.loader = loader
        self.transforms = transforms

    def __call__(self, item: Union[str, np.ndarray], index: int,
                 name: str) -> dict:
        if isinstance(item, np.ndarray):
            img = _as_bgr(item, name)
            results = dict(img=img,
                           img_shape=img.shape[:2],
                           ori_shape=img.shape[:2])
        else:
            results = self.loader(dict(img_path=str(item)))
            if results is None:
                raise ValueError(f'cannot read image file {name!r}.')
        results['img_path'] = name
        results['sample_idx'] = index
        packed = self.transforms(results)
        if packed is None:
            raise ValueError(f'the test pipeline dropped {name!r}.')
        packed['data_samples'].set_metainfo(
            dict(sample_idx=index, img_path=name))
        return packed


class _InputDataset(Dataset):
    """Inputs in order; unreadable ones become :data:`_Unreadable`."""

    def __init__(self, items: list, names: List[str],
                 pipeline: _ReIDInputPipeline, skip_unreadable: bool) -> None:
        self.items, self.names = items, names
        self.pipeline = pipeline
        self.skip_unreadable = skip_unreadable

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        try:
            return self.pipeline(self.items[i], i, self.names[i])
        except Exception as e:  # noqa: B902 (decoders raise many types)
            if not self.skip_unreadable:
                raise
            return _Unreadable(i, self.names[i], f'{type(e).__name__}: {e}')


def _collate_readable(batch: list):
    """Collate the readable items; report the count and the unreadable."""
    good = [b for b in batch if not isinstance(b, _Unreadable)]
    bad = [b for b in batch if isinstance(b, _Unreadable)]
    return (default_collate(good) if good else None), len(batch), bad


class ReIDInferencer(BaseInferencer):
    """Embed person images and search a gallery with a trained ReID model.

    Follows mmpretrain's inferencer conventions
    (:class:`mmpretrain.apis.BaseInferencer`: ``preprocess`` → ``forward`` →
    ``visualize`` → ``postprocess``, keyword dispatch, ``list_models``). The
    model comes from :func:`mmreid_usl.apis.init_model` (config file or
    object, or a model-zoo name from ``model-index.yml``) and a checkpoint,
    which must fit the config: every weight of the encoder that gives the
    features present with the model's shape and nothing else under it
    (:func:`mmreid_usl.utils.checkpoint_fit.check_checkpoint_fits`; a
    ``ValueError`` names the missing / unexpected / mis-shaped keys, where
    MMEngine's loader would only warn). Training-only state (memories,
    pseudo-labels), which published models drop, may be missing.

    Images are given as paths, BGR ``uint8`` arrays (as ``mmcv.imread``
    returns; ``(N, H, W, 3)`` is ``N`` images) or folders, searched
    recursively for image files (any names; no ids or cameras are needed).
    Each goes through the config's test pipeline
    (``cfg.test_dataloader.dataset.pipeline``; for arrays without its
    loading step) and is embedded in batches, with a progress bar, on CPU or
    GPU: the feature is the model's ``predict`` output, i.e. the
    L2-normalised feature of ``test_cfg.feat_source`` — what evaluation
    uses.

    A gallery (:class:`GalleryIndex`) is searched by cosine similarity
    ``s(q, g) = q · g``, highest first, which is the ranking of evaluation's
    squared distance ``||q - g||² = 2 - 2 q · g``; the search runs on faiss
    or torch (see :class:`GalleryIndex`). Optional k-reciprocal re-ranking
    (Zhong et al., *Re-ranking Person Re-identification with k-reciprocal
    Encoding*, CVPR 2017, https://arxiv.org/abs/1701.08398;
    ``rerank=True``) re-orders the whole gallery with
    :func:`mmreid_usl.evaluation.functional.k_reciprocal_rerank`.

    Unreadable images: a **gallery** image that cannot be read or decoded
    (corrupt file, not an image) is **skipped with a warning naming it**,
    so one bad file does not stop embedding a large folder; a gallery with
    no readable image is an error. A **query** that cannot be read is an
    **error** naming the file (the caller asked for that image). A folder
    that does not exist or holds no image file is an error.

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
        feat_source (str, optional): ``'student'`` / ``'momentum'``;
            defaults to the config's ``model.test_cfg.feat_source``.
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

    def __init__(self,
                 model: ModelType,
                 pretrained: Union[str, bool, None] = None,
                 device: Union[str, torch.device, None] = None,
                 gallery: Union[str, Sequence, GalleryIndex, None] = None,
                 feat_source: Optional[str] = None,
                 batch_size: int = 32,
                 num_workers: int = 0,
                 backend: str = 'auto',
                 name_pattern: Optional[str] = None,
                 rerank_cfg: Optional[dict] = None,
                 cfg_options: Optional[dict] = None) -> None:
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        self.checkpoint: Optional[str] = None
        if isinstance(model, BaseModel):
            if feat_source is not None:
                model.test_cfg['feat_source'] = feat_source
            if isinstance(pretrained, (str, Path)):
                raise ValueError('pass a built model with its weights loaded, '
                                 'or a config with pretrained=<checkpoint>.')
            cfg = getattr(model, 'cfg', None)
            if cfg is None:
                cfg = getattr(model, '_config', None)
            if cfg is None:
                raise ValueError('a built model needs its config in '
                                 'model.cfg (init_model sets it).')
            model.to(device)
        else:
            cfg, checkpoint = self._resolve_model(model, pretrained)
            cfg_options = dict(cfg_options or {})
            if feat_source is not None:
                cfg_options['model.test_cfg.feat_source'] = feat_source
            if checkpoint is not None:
                if not osp.isfile(checkpoint):
                    raise FileNotFoundError(
                        f'checkpoint {checkpoint!r} does not exist.')
                self.checkpoint = str(checkpoint)
            model = init_model(cfg,
                               checkpoint,
                               device=device,
                               cfg_options=cfg_options)
            cfg = model.cfg
            if checkpoint is not None:
                # strict for the encoder that gives the features (MMEngine's
                # loader only warns): raises naming the mis-fitting keys
                check_checkpoint_fits(model,
                                      checkpoint,
                                      [model.test_cfg['feat_source']],
                                      name=checkpoint)
        model._config = cfg  # BaseInferencer reads the config from here
        register_all_modules(init_default_scope=False)
        init_default_scope(cfg.get('default_scope', 'mmreid_usl'))
        super().__init__(model=model, pretrained=False, device=None)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.backend = backend
        if name_pattern is None:
            name_pattern = cfg.get('test_dataloader',
                                   {}).get('dataset',
                                           {}).get('name_pattern',
                                                   DEFAULT_NAME_PATTERN)
        self.name_pattern = name_pattern
        self.rerank_cfg = dict(rerank_cfg or {})
        self._gallery: Optional[GalleryIndex] = None
        if gallery is not None:
            self.set_gallery(gallery)

    # ------------------------------------------------------------------
    # model and pipeline
    @staticmethod
    def _resolve_model(
        model: Union[str, Path, Config], pretrained: Union[str, bool, None]
    ) -> Tuple[Union[str, Config], Optional[str]]:
        """Config and checkpoint of a config path / object / zoo name."""
        checkpoint = str(pretrained) if isinstance(pretrained,
                                                   (str, Path)) else None
        if isinstance(model, Config):
            return model, checkpoint
        if not isinstance(model, (str, Path)):
            raise TypeError('model must be a config file, a Config, a '
                            'model-zoo name or a BaseModel, got '
                            f'{type(model).__name__}.')
        model = str(model)
        if model.endswith('.py') or osp.isfile(model):
            if not osp.isfile(model):
                raise FileNotFoundError(f'config {model!r} does not exist.')
            return model, checkpoint
        zoo = _load_model_zoo()
        info = zoo.get(model.lower())
        if info is None:
            close = difflib.get_close_matches(model.lower(), list(zoo), n=3)
            raise ValueError(
                f'{model!r} is neither a config file nor a model-zoo name' +
                (f'; did you mean {close}?' if close else
                 ' (ReIDInferencer.list_models() lists the names).'))
        if pretrained is True:
            if not info['weights']:
                raise ValueError(
                    f'the model zoo has no published weights for {model!r}; '
                    'pass pretrained=<checkpoint file>.')
            checkpoint = info['weights']
        return info['config'], checkpoint

    def _init_pipeline(self, cfg: Config) -> _ReIDInputPipeline:
        """The config's test pipeline, its loading step split off."""
        try:
            pipeline_cfg = list(cfg.test_dataloader.dataset.pipeline)
        except AttributeError as e:
            raise ValueError('the config has no test_dataloader.dataset.'
                             'pipeline to preprocess images with.') from e
        loader = None
        rest = []
        for t in pipeline_cfg:
            if str(t['type']).split('.')[-1] in _LOADERS and loader is None:
                loader = TRANSFORMS.build(t)
            else:
                rest.append(TRANSFORMS.build(t))
        if loader is None:
            loader = TRANSFORMS.build(dict(type='LoadReIDImage'))
        return _ReIDInputPipeline(loader, Compose(rest))

    # ------------------------------------------------------------------
    # inputs
    def _inputs_to_list(self, inputs: InputType) -> list:
        """Flatten inputs: folders are expanded recursively (sorted).

        Raises:
            FileNotFoundError: A path is neither a file nor a folder.
            ValueError: A folder holds no image file.
        """
        if isinstance(inputs, (str, Path)):
            inputs = [inputs]
        elif isinstance(inputs, np.ndarray):
            inputs = list(inputs) if inputs.ndim == 4 else [inputs]
        elif isinstance(inputs, torch.Tensor):
            raise TypeError('pass images as paths or numpy arrays (HWC, '
                            'BGR uint8), not tensors.')
        items = []
        for item in inputs:
            if isinstance(item, np.ndarray):
                items.append(item)
                continue
            if not isinstance(item, (str, Path)):
                raise TypeError('inputs must be paths, folders or arrays, '
                                f'got {type(item).__name__}.')
            path = str(item)
            if osp.isdir(path):
                files = sorted(
                    scandir(path,
                            suffix=IMG_SUFFIXES,
                            recursive=True,
                            case_sensitive=False))
                if not files:
                    raise ValueError(
                        f'folder {path!r} holds no image file (searched '
                        f'recursively for {", ".join(IMG_SUFFIXES)}).')
                items += [osp.join(path, f) for f in files]
            elif osp.isfile(path):
                items.append(path)
            else:
                raise FileNotFoundError(
                    f'{path!r} is neither an image file nor a folder.')
        return items

    def check_inputs(self, inputs: InputType) -> int:
        """Read every input through the test pipeline without embedding.

        For queries, before a (long) gallery embedding: a missing,
        unreadable or undecodable query is then reported at once instead of
        after the whole gallery has been embedded.

        Returns:
            int: The number of images.

        Raises:
            FileNotFoundError: A path is neither a file nor a folder.
            ValueError: A folder holds no image file, or an image cannot be
                read or decoded (named).
        """
        items = self._inputs_to_list(inputs)
        for index, (item, name) in enumerate(zip(items,
                                                 self._names(items))):
            self.pipeline(item, index, name)
        return len(items)

    @staticmethod
    def _names(items: list) -> List[str]:
        return [
            item if isinstance(item, str) else f'<array {i}>'
            for i, item in enumerate(items)
        ]

    def preprocess(self,
                   inputs: list,
                   batch_size: Optional[int] = None,
                   num_workers: Optional[int] = None,
                   skip_unreadable: bool = False) -> DataLoader:
        """A loader of ``(batch or None, num_items, unreadable)`` tuples.

        ``batch`` is a ``default_collate``-d ``dict(inputs, data_samples)``
        whose samples carry ``sample_idx`` (the input's position) and
        ``img_path``; with ``skip_unreadable`` the items that failed are
        listed as :data:`_Unreadable` instead of raising.
        """
        dataset = _InputDataset(inputs, self._names(inputs), self.pipeline,
                                skip_unreadable)
        return DataLoader(dataset,
                          batch_size=batch_size or self.batch_size,
                          shuffle=False,
                          num_workers=self.num_workers
                          if num_workers is None else num_workers,
                          collate_fn=_collate_readable)

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
            batch_size (int, optional): Defaults to the inferencer's.
            num_workers (int, optional): Defaults to the inferencer's.
            skip_unreadable (bool): Skip images that cannot be read (a
                warning names each) instead of raising. Defaults to False.
            show_progress (bool, optional): Show a progress bar; None shows
                it when there is more than one batch. Defaults to True.

        Returns:
            tuple: ``features`` (float32 ``(n, D)``, CPU), the ``names``
            (paths; ``'<array i>'`` for arrays) of the embedded images in
            input order, and the original ``items`` they came from.

        Raises:
            ValueError: No input, or (``skip_unreadable``) none readable.
        """
        items = self._inputs_to_list(inputs)
        if not items:
            raise ValueError('no image to embed (empty input).')
        names = self._names(items)
        loader = self.preprocess(items, batch_size, num_workers,
                                 skip_unreadable)
        if show_progress is None:
            show_progress = len(items) > (batch_size or self.batch_size)
        progress = ProgressBar(len(items)) if show_progress else None
        feats = [None] * len(items)
        unreadable = []
        # a model evaluated on raw features (test_cfg.normalize=False, e.g.
        # Theory's configs) is still searched by cosine here
        raw = not self.model.test_cfg.get('normalize', True)
        try:
            for batch, count, bad in loader:
                unreadable += bad
                if batch is not None:
                    for sample in self.forward(batch):
                        feat = sample.pred_feature.float().cpu()
                        if raw:
                            feat = torch.nn.functional.normalize(feat, dim=0)
                        feats[sample.sample_idx] = feat
                if progress is not None:
                    progress.update(count)
        finally:
            if progress is not None:
                progress.file.write('\n')
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

    # ------------------------------------------------------------------
    # gallery
    def _meta(self) -> dict:
        return dict(config=str(getattr(self.config, 'filename', None) or ''),
                    checkpoint=self.checkpoint or '',
                    feat_source=self.model.test_cfg.get(
                        'feat_source', 'student'),
                    mmreid_usl_version=mmreid_usl.__version__)

    def build_gallery(self,
                      inputs: InputType,
                      batch_size: Optional[int] = None,
                      num_workers: Optional[int] = None,
                      name_pattern: Optional[str] = None,
                      show_progress: bool = True) -> GalleryIndex:
        """Embed a gallery (unreadable images skipped with a warning).

        Person / camera ids are parsed from the file names with
        ``name_pattern`` and attached when every name matches.

        Returns:
            GalleryIndex: The embedded gallery (``meta`` records the
            config, checkpoint and feature source).
        """
        feats, names, _ = self.embed(inputs,
                                     batch_size=batch_size,
                                     num_workers=num_workers,
                                     skip_unreadable=True,
                                     show_progress=show_progress)
        ids = parse_reid_names(names, name_pattern or self.name_pattern)
        pids, camids = ids if ids is not None else (None, None)
        meta = self._meta()
        meta['name_pattern'] = name_pattern or self.name_pattern
        return GalleryIndex(feats, names, pids, camids, meta=meta)

    def set_gallery(
            self, gallery: Union[str, Path, Sequence,
                                 GalleryIndex]) -> GalleryIndex:
        """Use a gallery: an index, a saved index (``.npz``) or images.

        An index built with another config, checkpoint or feature source
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
        meta = self._meta()
        for key in ('config', 'checkpoint', 'feat_source'):
            theirs = index.meta.get(key)
            if theirs and meta[key] and osp.basename(
                    str(theirs)) != osp.basename(meta[key]):
                print_log(
                    f'the gallery index was built with {key}={theirs!r}, '
                    f'this inferencer uses {meta[key]!r}; its features may '
                    'not be comparable.',
                    logger='current',
                    level=logging.WARNING)
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
        """Rank the gallery for query features (see :class:`GalleryIndex`).

        Args:
            query_feats (Tensor): ``(Q, D)`` L2-normalised features.
            topk (int): Results per query. Defaults to 10.
            rerank (bool): k-reciprocal re-ranking (:meth:`_rerank`).
                Defaults to False.

        Returns:
            tuple[Tensor, Tensor]: ``scores`` ``(Q, k)`` (cosine; with
            ``rerank``, ``1 - d*`` of the re-ranked distance ``d*``), highest
            first, and gallery ``indices`` ``(Q, k)``.

        Raises:
            RuntimeError: No gallery is set, or re-ranking is unavailable.
        """
        if self._gallery is None:
            raise RuntimeError('no gallery to search: pass gallery= to '
                               'ReIDInferencer or call set_gallery().')
        if rerank:
            return self._rerank(query_feats, topk)
        return self._gallery.search(query_feats.to(self.device),
                                    topk,
                                    backend=self.backend)

    def _rerank(self, query_feats: torch.Tensor,
                topk: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Top-k by the k-reciprocal re-ranked distance.

        Zhong et al., *Re-ranking Person Re-identification with k-reciprocal
        Encoding*, CVPR 2017 (https://arxiv.org/abs/1701.08398), as computed
        by :func:`mmreid_usl.evaluation.functional.k_reciprocal_rerank`
        (``rerank_cfg``; queries and the whole gallery form one set, so the
        cost grows with ``(Q + G)^2`` — a kNN pass over all pairs). The
        distance ``d* = (1 - λ) d_J + λ d̃`` lies in ``[0, 1]``; the score
        returned is ``1 - d*``.
        """
        try:
            from mmreid_usl.evaluation.functional import k_reciprocal_rerank
        except ImportError as e:
            raise RuntimeError(
                'k-reciprocal re-ranking is unavailable in this version of '
                'mmreid_usl (mmreid_usl.evaluation.functional has no '
                'k_reciprocal_rerank); search with rerank=False.') from e
        gallery = self._gallery
        q = query_feats.detach().float().cpu()
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2 or q.shape[1] != gallery.feat_dim:
            raise ValueError(
                f'query features must be (Q, {gallery.feat_dim}) to match '
                f'the gallery, got shape {tuple(q.shape)} (was the gallery '
                'built with another model?).')
        dist = k_reciprocal_rerank(q, gallery.features, **self.rerank_cfg)
        k = min(topk, len(gallery))
        chunk = max(1, (1 << 24) // len(gallery))
        scores, indices = [], []
        for s in range(0, q.shape[0], chunk):
            d = dist(s, min(s + chunk, q.shape[0]))
            val, idx = torch.topk(d, k, dim=1, largest=False, sorted=True)
            scores.append(1 - val)
            indices.append(idx)
        return torch.cat(scores), torch.cat(indices)

    # ------------------------------------------------------------------
    # the mmpretrain call flow
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
        results = self._pack(names, scores, indices)
        visualization = self.visualize(items, results, **vis)
        if return_datasamples:
            return dict(features=feats,
                        scores=scores,
                        indices=indices,
                        queries=names,
                        visualization=visualization)
        return self.postprocess(results, visualization, **post)

    def _pack(self, names: List[str], scores: torch.Tensor,
              indices: torch.Tensor) -> List[dict]:
        gallery = self._gallery
        results = []
        for name, sc, ix in zip(names, scores.tolist(), indices.tolist()):
            res = dict(query=name,
                       paths=[gallery.paths[j] for j in ix],
                       scores=[float(s) for s in sc],
                       indices=[int(j) for j in ix])
            if gallery.pids is not None:
                res['pids'] = [int(gallery.pids[j]) for j in ix]
                res['camids'] = [int(gallery.camids[j]) for j in ix]
            results.append(res)
        return results

    def visualize(self,
                  ori_inputs: list,
                  preds: List[dict],
                  out_file: Optional[str] = None,
                  title: Optional[str] = None) -> Optional[List[np.ndarray]]:
        """Draw one row per query: the query, then its top-k gallery images.

        Each gallery image shows its rank and cosine score. When the query's
        and the gallery's file names both give person ids (``name_pattern``)
        the frames are green (same id) or red (other id); otherwise neutral.

        Returns:
            list[np.ndarray] | None: The RGB picture (one array), or None
            when ``out_file`` is not given.
        """
        if out_file is None:
            return None
        from ._search_figure import draw_search_figure
        query_ids = parse_reid_names([p['query'] for p in preds],
                                     self.name_pattern)
        img = draw_search_figure(ori_inputs, preds, query_ids, out_file, title)
        print_log(f'Search picture saved to {out_file}', logger='current')
        return [img]

    def postprocess(self,
                    preds: List[dict],
                    visualization: Optional[List[np.ndarray]],
                    return_datasamples: bool = False,
                    **kwargs) -> List[dict]:
        """The per-query result dicts (already JSON-serialisable)."""
        return preds

    # ------------------------------------------------------------------
    # model zoo
    @staticmethod
    def list_models(pattern: Optional[str] = None) -> List[str]:
        """Model-zoo names in ``model-index.yml`` (optionally a wildcard).

        Args:
            pattern (str, optional): e.g. ``'*cuhk03*'``.

        Returns:
            list[str]: Sorted names.
        """
        names = sorted(info['name'] for info in _load_model_zoo().values())
        if pattern is not None:
            names = [
                n for n in names if fnmatch.fnmatch(n.lower(), pattern.lower())
            ]
        return names


__all__ = ['ReIDInferencer']
