#!/usr/bin/python3
"""coco_reference.py — expected COCO box metrics for tests/test_metrics.c.

pycocotools cannot be installed here, so this file is a line-by-line numpy
transcription of the parts of pycocotools that the C code reproduces
(cocodataset/cocoapi, PythonAPI/pycocotools/cocoeval.py and common/maskApi.c):

  bb_iou           maskApi.c bbIou (box IoU, iscrowd = 0)
  COCOevalBox      COCOeval with iouType='bbox', useCats=1, areaRng 'all' only:
    prepare          COCOeval._prepare (gt/dt grouped per (image_id, category_id))
    compute_iou      COCOeval.computeIoU
    evaluate_img     COCOeval.evaluateImg
    accumulate       COCOeval.accumulate
    summarize        COCOeval.summarize._summarize for AP, AP50, AP75, AR@100
  load_res         COCO.loadRes for 'bbox' results (id = index + 1, area = w * h)

It generates random and hand-made cases with a fixed seed (random boxes, ties in
score, duplicate gt, detections without gt, zero-area boxes, > 100 detections in
an image, boxes big enough to be "ignored", several categories, image ids out of
order) and writes their expected metrics to a JSON golden file that the C test
reads with jansson. Scores are float32 values (what ld_det holds), written as
exact decimal doubles, so C and numpy see the same numbers.

Run by hand (needs numpy only):
    /usr/bin/python3 tools/coco_reference.py tests/golden/coco_cases.json
"""
import argparse
import json

import numpy as np

# ---------------------------------------------------------------------------
# maskApi.c: bbIou(dt, gt, m, n, iscrowd, o)


def bb_iou(dt, gt):
    """IoU matrix [len(dt), len(gt)] of boxes [x, y, w, h], as bbIou computes it."""
    o = np.zeros((len(dt), len(gt)))
    for g, G in enumerate(gt):
        ga = G[2] * G[3]
        for d, D in enumerate(dt):
            da = D[2] * D[3]
            # w=fmin(D[2]+D[0],G[2]+G[0])-fmax(D[0],G[0]); if(w<=0) continue;
            w = min(D[2] + D[0], G[2] + G[0]) - max(D[0], G[0])
            if w <= 0:
                continue
            h = min(D[3] + D[1], G[3] + G[1]) - max(D[1], G[1])
            if h <= 0:
                continue
            i = w * h
            u = da + ga - i          # crowd ? da : da+ga-i  (no crowd here)
            o[d, g] = i / u
    return o


# ---------------------------------------------------------------------------
# cocoeval.py


class Params:
    """Params.setDetParams, with the single area range 'all'."""

    def __init__(self):
        self.imgIds = []
        self.catIds = []
        # np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
        self.iouThrs = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
        # np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
        self.recThrs = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
        self.maxDets = [1, 10, 100]
        self.areaRng = [[0 ** 2, 1e5 ** 2]]
        self.areaRngLbl = ['all']
        self.useCats = 1


def load_res(images):
    """COCO.loadRes for bbox results: ids 1..N in file order, area = w * h."""
    dts = []
    for im in images:
        for d in im['dt']:
            x, y, w, h, s, c = d
            dts.append({'image_id': im['id'], 'category_id': c + 1, 'bbox': [x, y, w, h],
                        'score': s, 'area': w * h, 'iscrowd': 0, 'id': len(dts) + 1})
    return dts


def load_gt(images):
    """Ground-truth annotations; ids 1..N (never 0: pycocotools treats id 0 as unmatched)."""
    gts = []
    for im in images:
        for g in im['gt']:
            x, y, w, h, c = g
            gts.append({'image_id': im['id'], 'category_id': c + 1, 'bbox': [x, y, w, h],
                        'area': w * h, 'iscrowd': 0, 'id': len(gts) + 1})
    return gts


class COCOevalBox:
    def __init__(self, images, n_categories, params=None):
        self.params = params or Params()
        # self.params.imgIds = sorted(cocoGt.getImgIds()); catIds = sorted(cocoGt.getCatIds())
        self.params.imgIds = sorted(im['id'] for im in images)
        self.params.catIds = list(range(1, n_categories + 1))
        self.gt_anns = load_gt(images)
        self.dt_anns = load_res(images)

    def prepare(self):
        # _prepare: set ignore flag; group per (image_id, category_id) in list order
        self._gts = {}
        self._dts = {}
        for gt in self.gt_anns:
            gt['ignore'] = gt['ignore'] if 'ignore' in gt else 0
            gt['ignore'] = 'iscrowd' in gt and gt['iscrowd']
            self._gts.setdefault((gt['image_id'], gt['category_id']), []).append(gt)
        for dt in self.dt_anns:
            self._dts.setdefault((dt['image_id'], dt['category_id']), []).append(dt)

    def evaluate(self):
        p = self.params
        p.imgIds = list(np.unique(p.imgIds))
        p.catIds = list(np.unique(p.catIds))
        p.maxDets = sorted(p.maxDets)
        self.prepare()
        catIds = p.catIds
        self.ious = {(imgId, catId): self.compute_iou(imgId, catId)
                     for imgId in p.imgIds for catId in catIds}
        maxDet = p.maxDets[-1]
        self.evalImgs = [self.evaluate_img(imgId, catId, areaRng, maxDet)
                         for catId in catIds for areaRng in p.areaRng for imgId in p.imgIds]

    def compute_iou(self, imgId, catId):
        p = self.params
        gt = self._gts.get((imgId, catId), [])
        dt = self._dts.get((imgId, catId), [])
        if len(gt) == 0 and len(dt) == 0:
            return []
        inds = np.argsort([-d['score'] for d in dt], kind='mergesort')
        dt = [dt[i] for i in inds]
        if len(dt) > p.maxDets[-1]:
            dt = dt[0:p.maxDets[-1]]
        g = [g['bbox'] for g in gt]
        d = [d['bbox'] for d in dt]
        return bb_iou(d, g)

    def evaluate_img(self, imgId, catId, aRng, maxDet):
        p = self.params
        gt = self._gts.get((imgId, catId), [])
        dt = self._dts.get((imgId, catId), [])
        if len(gt) == 0 and len(dt) == 0:
            return None
        for g in gt:
            if g['ignore'] or (g['area'] < aRng[0] or g['area'] > aRng[1]):
                g['_ignore'] = 1
            else:
                g['_ignore'] = 0
        # sort dt highest score first, sort gt ignore last
        gtind = np.argsort([g['_ignore'] for g in gt], kind='mergesort')
        gt = [gt[i] for i in gtind]
        dtind = np.argsort([-d['score'] for d in dt], kind='mergesort')
        dt = [dt[i] for i in dtind[0:maxDet]]
        iscrowd = [int(o['iscrowd']) for o in gt]
        ious = self.ious[imgId, catId]
        ious = ious[:, gtind] if len(ious) > 0 else ious
        T = len(p.iouThrs)
        G = len(gt)
        D = len(dt)
        gtm = np.zeros((T, G))
        dtm = np.zeros((T, D))
        gtIg = np.array([g['_ignore'] for g in gt])
        dtIg = np.zeros((T, D))
        if not len(ious) == 0:
            for tind, t in enumerate(p.iouThrs):
                for dind, d in enumerate(dt):
                    # information about best match so far (m=-1 -> unmatched)
                    iou = min([t, 1 - 1e-10])
                    m = -1
                    for gind, g in enumerate(gt):
                        # if this gt already matched, and not a crowd, continue
                        if gtm[tind, gind] > 0 and not iscrowd[gind]:
                            continue
                        # if dt matched to reg gt, and on ignore gt, stop
                        if m > -1 and gtIg[m] == 0 and gtIg[gind] == 1:
                            break
                        # continue to next gt unless better match made
                        if ious[dind, gind] < iou:
                            continue
                        # if match successful and best so far, store appropriately
                        iou = ious[dind, gind]
                        m = gind
                    if m == -1:
                        continue
                    dtIg[tind, dind] = gtIg[m]
                    dtm[tind, dind] = gt[m]['id']
                    gtm[tind, m] = d['id']
        # set unmatched detections outside of area range to ignore
        a = np.array([d['area'] < aRng[0] or d['area'] > aRng[1] for d in dt]).reshape((1, len(dt)))
        dtIg = np.logical_or(dtIg, np.logical_and(dtm == 0, np.repeat(a, T, 0)))
        return {'image_id': imgId, 'category_id': catId, 'aRng': aRng, 'maxDet': maxDet,
                'dtIds': [d['id'] for d in dt], 'gtIds': [g['id'] for g in gt],
                'dtMatches': dtm, 'gtMatches': gtm, 'dtScores': [d['score'] for d in dt],
                'gtIgnore': gtIg, 'dtIgnore': dtIg}

    def accumulate(self):
        p = self.params
        T = len(p.iouThrs)
        R = len(p.recThrs)
        K = len(p.catIds)
        A = len(p.areaRng)
        M = len(p.maxDets)
        precision = -np.ones((T, R, K, A, M))  # -1 for the precision of absent categories
        recall = -np.ones((T, K, A, M))
        I0 = len(p.imgIds)
        A0 = len(p.areaRng)
        for k in range(K):
            Nk = k * A0 * I0
            for a in range(A):
                Na = a * I0
                for m, maxDet in enumerate(p.maxDets):
                    E = [self.evalImgs[Nk + Na + i] for i in range(I0)]
                    E = [e for e in E if e is not None]
                    if len(E) == 0:
                        continue
                    dtScores = np.concatenate([e['dtScores'][0:maxDet] for e in E])
                    # mergesort is used to be consistent as Matlab implementation.
                    inds = np.argsort(-dtScores, kind='mergesort')
                    dtm = np.concatenate([e['dtMatches'][:, 0:maxDet] for e in E], axis=1)[:, inds]
                    dtIg = np.concatenate([e['dtIgnore'][:, 0:maxDet] for e in E], axis=1)[:, inds]
                    gtIg = np.concatenate([e['gtIgnore'] for e in E])
                    npig = np.count_nonzero(gtIg == 0)
                    if npig == 0:
                        continue
                    tps = np.logical_and(dtm, np.logical_not(dtIg))
                    fps = np.logical_and(np.logical_not(dtm), np.logical_not(dtIg))
                    tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
                    fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
                    for t, (tp, fp) in enumerate(zip(tp_sum, fp_sum)):
                        tp = np.array(tp)
                        fp = np.array(fp)
                        nd = len(tp)
                        rc = tp / npig
                        pr = tp / (fp + tp + np.spacing(1))
                        q = np.zeros((R,))
                        if nd:
                            recall[t, k, a, m] = rc[-1]
                        else:
                            recall[t, k, a, m] = 0
                        pr = pr.tolist()
                        q = q.tolist()
                        for i in range(nd - 1, 0, -1):
                            if pr[i] > pr[i - 1]:
                                pr[i - 1] = pr[i]
                        inds = np.searchsorted(rc, p.recThrs, side='left')
                        try:
                            for ri, pi in enumerate(inds):
                                q[ri] = pr[pi]
                        except IndexError:
                            pass
                        precision[t, :, k, a, m] = np.array(q)
        self.eval = {'precision': precision, 'recall': recall}

    def summarize_one(self, ap=1, iouThr=None, areaRng='all', maxDets=100):
        p = self.params
        aind = [i for i, aRng in enumerate(p.areaRngLbl) if aRng == areaRng]
        mind = [i for i, mDet in enumerate(p.maxDets) if mDet == maxDets]
        if ap == 1:
            s = self.eval['precision']
            if iouThr is not None:
                t = np.where(iouThr == p.iouThrs)[0]
                s = s[t]
            s = s[:, :, :, aind, mind]
        else:
            s = self.eval['recall']
            if iouThr is not None:
                t = np.where(iouThr == p.iouThrs)[0]
                s = s[t]
            s = s[:, :, aind, mind]
        if len(s[s > -1]) == 0:
            return -1
        return float(np.mean(s[s > -1]))


# ---------------------------------------------------------------------------
# The operating point (lymphdet's own definition, metrics.h): evaluateImg at one
# IoU threshold over the detections with score >= threshold, with no cap.


def operating_point(images, n_categories, score_thr, iou_thr):
    kept = [dict(im, dt=[d for d in im['dt'] if d[4] >= score_thr]) for im in images]
    p = Params()
    p.iouThrs = np.array([iou_thr])
    p.maxDets = [10 ** 9]
    ev = COCOevalBox(kept, n_categories, p)
    ev.evaluate()
    tp = fp = npig = 0
    for e in ev.evalImgs:
        if e is None:
            continue
        dtm = e['dtMatches'][0] > 0
        dtIg = e['dtIgnore'][0] > 0
        tp += int(np.count_nonzero(dtm & ~dtIg))
        fp += int(np.count_nonzero(~dtm & ~dtIg))
        npig += int(np.count_nonzero(e['gtIgnore'] == 0))
    return {'score_threshold': score_thr, 'iou_threshold': iou_thr,
            'tp': tp, 'fp': fp, 'fn': npig - tp, 'n_gt': npig}


def expected(images, n_categories):
    ev = COCOevalBox(images, n_categories)
    ev.evaluate()
    ev.accumulate()
    m100 = ev.params.maxDets.index(100)
    res = {
        'ap': ev.summarize_one(1),
        'ap50': ev.summarize_one(1, iouThr=.5, maxDets=100),
        'ap75': ev.summarize_one(1, iouThr=.75, maxDets=100),
        'ar100': ev.summarize_one(0, maxDets=100),
        # gt boxes that are not ignored (area inside the 'all' range)
        'n_gt': sum(1 for g in ev.gt_anns if not g['_ignore'] and not g['ignore']),
    }
    per_cat = []
    for k in range(n_categories):
        s = ev.eval['precision'][:, :, k, 0, m100]
        per_cat.append(float(np.mean(s)) if (s > -1).all() else -1)
    res['per_category_ap'] = per_cat
    if n_categories >= 1:
        s = ev.eval['precision'][0, :, 0, 0, m100]
        res['precision50_cat0'] = [float(v) for v in s] if (s > -1).all() else None
    # -1 (pycocotools' "no gt") becomes null: the C code returns NaN
    for key in ('ap', 'ap50', 'ap75', 'ar100'):
        if res[key] == -1:
            res[key] = None
    res['per_category_ap'] = [None if v == -1 else v for v in per_cat]
    return res


# ---------------------------------------------------------------------------
# Cases


def f32(x):
    return float(np.float32(x))


def jitter_box(rng, b, amount):
    x, y, w, h = b
    dx, dy = rng.normal(0, amount * w), rng.normal(0, amount * h)
    sw, sh = np.exp(rng.normal(0, amount)), np.exp(rng.normal(0, amount))
    return [x + dx, y + dy, w * sw, h * sh]


def random_case(rng, n_images, n_categories, max_gt, max_dt, tie_grid, p_zero_area, informative):
    ids = rng.permutation(np.arange(1, 3 * n_images + 1))[:n_images]   # unique, out of order
    images = []
    for i in range(n_images):
        gt = []
        for _ in range(int(rng.integers(0, max_gt + 1))):
            w, h = rng.uniform(10, 200), rng.uniform(10, 200)
            x, y = rng.uniform(0, 469 - w), rng.uniform(0, 469 - h)
            gt.append([round(float(v), 1) for v in (x, y, w, h)] + [int(rng.integers(0, n_categories))])
        dt = []
        for _ in range(int(rng.integers(0, max_dt + 1))):
            near = bool(gt) and rng.random() < 0.6
            if near:                               # near a labelled box
                g = gt[int(rng.integers(0, len(gt)))]
                box = jitter_box(rng, g[:4], rng.choice([0.02, 0.08, 0.3]))
                cat = g[4] if rng.random() < 0.85 else int(rng.integers(0, n_categories))
            else:                                  # a false positive anywhere
                w, h = rng.uniform(10, 200), rng.uniform(10, 200)
                box = [rng.uniform(0, 469 - w), rng.uniform(0, 469 - h), w, h]
                cat = int(rng.integers(0, n_categories))
            if rng.random() < p_zero_area:
                box[2 + int(rng.integers(0, 2))] = 0.0
            box = [round(float(v), 1) for v in box]     # short decimals keep the golden small
            box[2], box[3] = max(box[2], 0.0), max(box[3], 0.0)
            u = rng.random()
            if informative:                        # a detector whose scores mean something
                u = 0.4 + 0.6 * u if near else 0.7 * u
            score = f32(np.floor(u * tie_grid) / tie_grid) if tie_grid else f32(u)
            dt.append(box + [score, cat])
        images.append({'id': int(ids[i]), 'gt': gt, 'dt': dt})
    return images


def hand_cases():
    cases = []
    # The ranking worked by hand in tests/test_metrics.c (3 gt, 5 detections).
    cases.append(('hand_3gt_5det', 1, [
        {'id': 1, 'gt': [[0, 0, 10, 10, 0], [100, 100, 10, 10, 0]],
         'dt': [[0, 0, 10, 10, f32(0.9), 0], [50, 50, 10, 10, f32(0.8), 0],
                [100, 100, 10, 10, f32(0.7), 0]]},
        {'id': 2, 'gt': [[0, 0, 20, 20, 0]],
         'dt': [[200, 200, 10, 10, f32(0.6), 0], [0, 0, 20, 20, f32(0.5), 0]]},
    ]))
    # IoU exactly at thresholds: 0.5, 0.75 and 0.9 (0.8999999999999999 is the 9th threshold)
    cases.append(('iou_on_thresholds', 1, [
        {'id': 5, 'gt': [[0, 0, 10, 10, 0]], 'dt': [[0, 0, 5, 10, f32(0.9), 0]]},
        {'id': 6, 'gt': [[0, 0, 10, 10, 0]], 'dt': [[0, 0, 7.5, 10, f32(0.8), 0]]},
        {'id': 7, 'gt': [[0, 0, 10, 10, 0]], 'dt': [[0, 0, 9, 10, f32(0.7), 0]]},
        {'id': 8, 'gt': [[0, 0, 10, 10, 0]], 'dt': [[0, 0, 10, 10, f32(0.6), 0]]},
    ]))
    # duplicate gt (IoU ties: the later gt wins) and duplicate detections
    cases.append(('duplicate_gt_and_dets', 1, [
        {'id': 3, 'gt': [[10, 10, 50, 50, 0], [10, 10, 50, 50, 0], [12, 10, 50, 50, 0]],
         'dt': [[11, 10, 50, 50, f32(0.5), 0], [11, 10, 50, 50, f32(0.5), 0],
                [11, 10, 50, 50, f32(0.5), 0], [11, 10, 50, 50, f32(0.5), 0]]},
    ]))
    # more than 100 detections in one image: only the top 100 count
    dts = [[float(i), 0, 20, 20, f32(1 - i / 200), 0] for i in range(150)]
    dts.append([300, 300, 20, 20, f32(0.01), 0])          # rank 151: the true match, cut off
    cases.append(('max_dets_cap', 1, [
        {'id': 1, 'gt': [[300, 300, 20, 20, 0], [0, 0, 20, 20, 0]], 'dt': dts},
    ]))
    # boxes with area > 1e10 are ignored (gt) or ignored when unmatched (dt)
    cases.append(('area_ignore', 1, [
        {'id': 1, 'gt': [[0, 0, 2e5, 2e5, 0], [0, 0, 10, 10, 0]],
         'dt': [[0, 0, 2e5, 2e5, f32(0.9), 0], [0, 0, 10, 10, f32(0.8), 0],
                [5e5, 5e5, 2e5, 2e5, f32(0.7), 0], [50, 50, 10, 10, f32(0.6), 0]]},
    ]))
    # a detection already matched to a regular gt stops before the ignored ones
    # (the 'break' in evaluateImg), even when an ignored gt overlaps it more
    cases.append(('ignore_break', 1, [
        {'id': 1, 'gt': [[0, 0, 99999, 99999, 0], [0, 0, 100001, 100001, 0]],
         'dt': [[0, 0, 100001, 100001, f32(0.9), 0]]},
    ]))
    # no detections at all: AP 0
    cases.append(('no_detections', 1, [
        {'id': 1, 'gt': [[0, 0, 10, 10, 0]], 'dt': []},
        {'id': 2, 'gt': [], 'dt': []},
    ]))
    # detections but no gt anywhere: undefined (pycocotools -1)
    cases.append(('no_gt', 1, [
        {'id': 1, 'gt': [], 'dt': [[0, 0, 10, 10, f32(0.9), 0]]},
    ]))
    # zero-area boxes: IoU 0, never a match
    cases.append(('zero_area', 1, [
        {'id': 1, 'gt': [[0, 0, 10, 10, 0], [30, 30, 0, 10, 0]],
         'dt': [[0, 0, 0, 10, f32(0.9), 0], [30, 30, 0, 10, f32(0.8), 0],
                [0, 0, 10, 10, f32(0.7), 0]]},
    ]))
    # score ties across images: the concatenation order is by image id
    cases.append(('ties_across_images', 1, [
        {'id': 9, 'gt': [[0, 0, 10, 10, 0]], 'dt': [[0, 0, 10, 10, f32(0.5), 0]]},
        {'id': 2, 'gt': [[0, 0, 10, 10, 0]], 'dt': [[40, 40, 10, 10, f32(0.5), 0]]},
        {'id': 5, 'gt': [], 'dt': [[40, 40, 10, 10, f32(0.5), 0], [0, 0, 10, 10, f32(0.5), 0]]},
    ]))
    # two categories, one without gt (left out of the mean), one image with neither
    cases.append(('two_categories', 3, [
        {'id': 1, 'gt': [[0, 0, 10, 10, 0], [50, 50, 20, 20, 1]],
         'dt': [[0, 0, 10, 10, f32(0.9), 1], [50, 50, 20, 20, f32(0.8), 1],
                [0, 0, 10, 10, f32(0.7), 0], [5, 5, 10, 10, f32(0.6), 2]]},
        {'id': 4, 'gt': [], 'dt': []},
    ]))
    cases.append(('no_images', 1, []))
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('out', help='golden JSON to write')
    ap.add_argument('--seed', type=int, default=20250107)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    cases = hand_cases()
    configs = [  # n_images, n_categories, max_gt, max_dt, tie_grid, p_zero_area, informative
        (1, 1, 2, 4, 0, 0.0, 0), (3, 1, 3, 8, 4, 0.0, 1), (5, 1, 2, 12, 0, 0.1, 0),
        (10, 1, 3, 10, 8, 0.0, 1), (10, 1, 1, 30, 0, 0.0, 0), (20, 1, 2, 6, 2, 0.0, 1),
        (30, 1, 3, 8, 0, 0.05, 1), (30, 1, 2, 6, 10, 0.0, 0), (8, 2, 3, 10, 0, 0.0, 1),
        (15, 3, 3, 8, 5, 0.0, 0), (20, 2, 4, 10, 0, 0.0, 1), (30, 1, 2, 15, 0, 0.0, 1),
    ]
    for j, c in enumerate(configs):
        cases.append((f'random_{j:02d}_{c[0]}img_{c[1]}cat', c[1], random_case(rng, *c)))
    p = Params()
    out = {
        'generator': f'tools/coco_reference.py --seed {args.seed} (numpy {np.__version__})',
        'note': 'expected values from a numpy transcription of pycocotools COCOeval (bbox, '
                'area all, maxDets 100); null = pycocotools -1 (no gt); scores are float32',
        'iou_thrs': [float(v) for v in p.iouThrs],
        'rec_thrs': [float(v) for v in p.recThrs],
        'cases': [],
    }
    for name, n_cat, images in cases:
        exp = expected(images, n_cat)
        exp['point'] = operating_point(images, n_cat, f32(0.5), 0.5)
        out['cases'].append({'name': name, 'n_categories': n_cat, 'images': images,
                             'expected': exp})
        print(f"{name:32s} AP {exp['ap']} AP50 {exp['ap50']} AR100 {exp['ar100']}")
    with open(args.out, 'w') as f:
        json.dump(out, f, separators=(',', ':'))
        f.write('\n')


if __name__ == '__main__':
    main()
