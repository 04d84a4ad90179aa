# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Visualisation (rank lists): see tools/analysis_tools/."""
