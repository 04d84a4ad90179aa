# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Image loading whose errors name the file."""
import os.path as osp
from typing import Optional

from mmcv.transforms import LoadImageFromFile

from mmreid_usl.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadReIDImage(LoadImageFromFile):
    """:class:`mmcv.transforms.LoadImageFromFile` with errors naming the file.

    mmcv raises a bare ``FileNotFoundError(2, 'No such file or directory')``
    without the path for a missing local file, and an ``AssertionError``
    (stripped under ``python -O``) for an undecodable one. This subclass
    changes nothing else: same arguments, same output keys (``img``,
    ``img_shape``, ``ori_shape``).

    Raises:
        FileNotFoundError: The image file does not exist (path in message).
        ValueError: The file exists but cannot be decoded (path in message).
    """

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` (see ``LoadImageFromFile``)."""
        filename = results['img_path']
        try:
            return super().transform(results)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f'image file {filename!r} does not exist.') from e
        except Exception as e:  # noqa: B902 (decoder errors vary by backend)
            if not osp.exists(filename) and self.backend_args is None \
                    and self.file_client_args is None:
                raise FileNotFoundError(
                    f'image file {filename!r} does not exist.') from e
            raise ValueError(f'cannot decode image file {filename!r} '
                             f'(corrupt or not an image): {e!r}') from e
