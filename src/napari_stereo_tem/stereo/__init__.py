"""Dislocations in 3D from a stereo pair, stage by stage (DESIGN section 3).

The modules in the order a pair passes through them:

1. :mod:`.alignment` finds how the two views are misaligned (shift, tilt-axis angle);
2. :mod:`.rectification` turns epipolar lines into image rows;
3. :mod:`.detection` marks the dislocations (probability, labels, skeleton polylines);
   :mod:`.detect` is the whole of it for one image, with contrast and scale decided;
4. :mod:`.matching` finds the disparity of every line pixel (learned matcher, refinement);
5. :mod:`.projection` projects at a tilt and triangulates back to 3D;
6. :mod:`.pipeline` runs all of the above on a pair and writes the result folder;
   :mod:`.pair_list` reads many pairs for one run, :mod:`.lines_io` the files.

Around the result: :mod:`.corrections` (the user's fixes to matches and depths),
:mod:`.reprojection` (the model seen from other tilts) and :mod:`.crystal_frame`
(the model in crystal coordinates). :mod:`.skeleton_graph` gives a skeleton's branches.

Importing this package imports none of its modules.
"""
