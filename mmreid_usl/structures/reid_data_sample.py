# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The data element passed between the ReID pipeline, model and metric."""
from typing import Optional, Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement


class ReIDDataSample(BaseDataElement):
    """One person image's annotations and predictions.

    Meta fields (set by ``PackReIDInputs``): ``sample_idx`` (index into the
    dataset, the key pseudo-labels are looked up with), ``camid``,
    ``img_path``, ``is_query`` (test split only), ``img_shape``.

    Data fields:
        - ``gt_label`` (``torch.LongTensor`` of shape ``(1,)``): the true
          person id. Used for evaluation and diagnostics only, never for
          unsupervised training.
        - ``pred_feature`` (``torch.Tensor`` of shape ``(D,)``): the
          L2-normalised embedding predicted by the model.
    """

    def set_gt_label(
            self, value: Union[int, np.integer, torch.Tensor]) -> 'ReIDDataSample':
        """Set the true person id."""
        self.gt_label = torch.as_tensor(value, dtype=torch.long).reshape(-1)
        return self

    def set_pred_feature(self, value: torch.Tensor) -> 'ReIDDataSample':
        """Set the predicted embedding (shape ``(D,)``)."""
        self.pred_feature = value
        return self

    @property
    def pid(self) -> Optional[int]:
        """int: The true person id as a Python int, if set."""
        if 'gt_label' not in self:
            return None
        return int(self.gt_label[0])
