# Copyright (c) mmreid_usl contributors. All rights reserved.
