# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Write the tiny ReID fixtures of ``tests/data`` (run once, then commit).

Each folder is laid out exactly like the real dataset, file names included,
with a handful of 16x8 (H x W) JPEGs whose colour encodes the identity::

    python tests/data/make_fixtures.py
"""
import os
import os.path as osp
import zlib

import numpy as np
from PIL import Image

ROOT = osp.dirname(osp.abspath(__file__))

MARKET = {
    'bounding_box_train': [
        '0002_c1s1_000451_03.jpg', '0002_c1s1_000551_01.jpg',
        '0002_c2s1_000301_01.jpg', '0007_c2s3_070952_01.jpg',
        '0007_c3s3_015044_01.jpg', '0007_c6s4_001902_02.jpg',
        '0010_c1s1_002301_01.jpg', '0010_c4s1_001726_05.jpg',
        '0010_c5s1_001426_02.jpg'
    ],
    'query': [
        '0001_c1s1_001051_00.jpg', '0001_c2s1_000301_00.jpg',
        '0003_c1s6_015971_00.jpg'
    ],
    'bounding_box_test': [
        '-1_c1s1_000401_03.jpg', '-1_c3s1_000551_02.jpg',
        '0000_c1s1_000151_01.jpg', '0000_c6s1_002001_04.jpg',
        '0001_c1s1_001051_03.jpg', '0001_c3s1_000551_01.jpg',
        '0001_c5s1_000476_04.jpg', '0003_c2s2_000476_04.jpg',
        '0003_c4s6_015641_01.jpg'
    ],
}
DUKE = {
    'bounding_box_train': [
        '0001_c2_f0046182.jpg', '0001_c2_f0046302.jpg', '0001_c6_f0030883.jpg',
        '0003_c1_f0044185.jpg', '0003_c8_f0011426.jpg', '0004_c1_f0044285.jpg',
        '0004_c5_f0051341.jpg'
    ],
    'query': ['0005_c2_f0046985.jpg', '0008_c7_f0090121.jpg'],
    'bounding_box_test': [
        '0002_c3_f0044185.jpg', '0005_c5_f0051341.jpg', '0005_c8_f0012121.jpg',
        '0008_c1_f0080121.jpg', '0008_c7_f0090421.jpg'
    ],
}
MSMT_V1 = {
    'bounding_box_train': [
        '0000_c1_0000.jpg', '0000_c14_0001.jpg', '0001_c3_0000.jpg',
        '0001_c3_0001.jpg', '0001_c15_0002.jpg'
    ],
    'query': ['0000_c2_0000.jpg', '0002_c11_0000.jpg'],
    'bounding_box_test': [
        '0000_c5_0001.jpg', '0000_c12_0002.jpg', '0002_c11_0003.jpg',
        '0002_c9_0004.jpg'
    ],
}
# MSMT17_V2: (list file, image sub-folder, relative paths); the face-masked
# image folders of the V2 release.
MSMT_V2 = [
    ('list_train.txt', 'mask_train_v2', [
        '0000/0000_000_01_0303morning_0015_0.jpg',
        '0000/0000_001_01_0303morning_0015_1.jpg',
        '0000/0000_002_07_0303morning_0035_0.jpg',
        '0001/0001_000_14_0303noon_0987_0.jpg',
        '0001/0001_001_15_0303noon_1001_2.jpg'
    ]),
    ('list_val.txt', 'mask_train_v2', [
        '0000/0000_003_07_0303morning_0036_0.jpg',
        '0002/0002_000_10_0113afternoon_0201_0.jpg',
        '0002/0002_001_12_0113afternoon_0311_1.jpg'
    ]),
    ('list_query.txt', 'mask_test_v2', [
        '0000/0000_000_05_0303morning_0008_0.jpg',
        '0001/0001_000_02_0113noon_0120_0.jpg'
    ]),
    ('list_gallery.txt', 'mask_test_v2', [
        '0000/0000_001_05_0303morning_0009_0.jpg',
        '0000/0000_002_11_0303morning_0100_0.jpg',
        '0001/0001_001_02_0113noon_0121_0.jpg',
        '0001/0001_002_09_0113noon_0200_1.jpg',
        '0003/0003_000_04_0114morning_0050_0.jpg'
    ]),
]
# PersonX in the Market layout Cluster Contrast reads: cameras 3, 4, 8, 10,
# 11, 12; test ids follow the 410 train ids.
PERSONX = {
    'bounding_box_train': [
        '0001_c3_0001.jpg', '0001_c4_0002.jpg', '0001_c8_0003.jpg',
        '0005_c10_0001.jpg', '0005_c11_0002.jpg', '0005_c12_0003.jpg',
        '0009_c3_0001.jpg', '0009_c12_0002.jpg'
    ],
    'query': ['0411_c3_0001.jpg', '0412_c10_0001.jpg'],
    'bounding_box_test': [
        '0411_c4_0002.jpg', '0411_c11_0003.jpg', '0412_c8_0002.jpg',
        '0413_c12_0001.jpg'
    ],
}
# VeRi-776: VVVV_cCCC_FFFFFFFF_N.jpg in image_train/, image_query/ and
# image_test/ (the gallery), with the name_*.txt lists of the release.
VERI = {
    'image_train': [
        '0001_c001_00016450_0.jpg', '0001_c002_00015940_0.jpg',
        '0001_c019_00013285_1.jpg', '0004_c015_00060520_0.jpg',
        '0004_c020_00011995_1.jpg', '0005_c003_00079210_0.jpg',
        '0005_c004_00071550_1.jpg'
    ],
    'image_query': ['0002_c002_00030600_0.jpg', '0010_c014_00037895_0.jpg'],
    'image_test': [
        '0002_c002_00030605_1.jpg', '0002_c003_00084280_0.jpg',
        '0010_c006_00012040_0.jpg', '0014_c011_00034755_1.jpg',
        '0014_c017_00090265_0.jpg'
    ],
}
VERI_LISTS = dict(
    image_train='name_train.txt',
    image_query='name_query.txt',
    image_test='name_test.txt')


def write_image(path: str) -> None:
    """A 16x8 JPEG whose colour is a hash of the id in the file name."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    name = osp.basename(path)
    seed = zlib.crc32(name.split('_')[0].encode())
    rng = np.random.default_rng(seed)
    img = np.empty((16, 8, 3), np.uint8)
    img[:8] = rng.integers(0, 256, 3)
    img[8:] = rng.integers(0, 256, 3)
    Image.fromarray(img).save(path, quality=75)


def write_folders(root: str, layout: dict) -> None:
    for sub, names in layout.items():
        for name in names:
            write_image(osp.join(root, sub, name))


def main() -> None:
    market = osp.join(ROOT, 'Market-1501-v15.09.15')
    write_folders(market, MARKET)
    # The real bounding_box_test also holds a Windows thumbnail cache.
    with open(osp.join(market, 'bounding_box_test', 'Thumbs.db'), 'wb') as f:
        f.write(b'\0' * 16)
    write_folders(osp.join(ROOT, 'DukeMTMC-reID'), DUKE)
    write_folders(osp.join(ROOT, 'MSMT17_V1'), MSMT_V1)
    write_folders(osp.join(ROOT, 'PersonX'), PERSONX)
    veri = osp.join(ROOT, 'VeRi')
    write_folders(veri, VERI)
    for sub, list_name in VERI_LISTS.items():
        with open(osp.join(veri, list_name), 'w') as f:
            f.writelines(f'{name}\n' for name in VERI[sub])
    v2 = osp.join(ROOT, 'MSMT17_V2')
    for list_name, sub, rel_paths in MSMT_V2:
        lines = []
        for rel in rel_paths:
            write_image(osp.join(v2, sub, rel))
            lines.append(f'{rel} {int(osp.basename(rel)[:4])}\n')
        with open(osp.join(v2, list_name), 'w') as f:
            f.writelines(lines)


if __name__ == '__main__':
    main()
