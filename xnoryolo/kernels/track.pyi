# Type stub of the compiled box-tracking module (kernels/track.pyx).
import numpy as np

def kalman_predict(
    rows: np.ndarray, steps: float, move: bool, q_scale: np.ndarray, q_fixed: np.ndarray
) -> None: ...
def kalman_initiate(
    rows: np.ndarray, boxes: np.ndarray, p0_scale: np.ndarray, p0_fixed: np.ndarray
) -> None: ...
def kalman_update(
    rows: np.ndarray,
    measured_by: np.ndarray,
    boxes: np.ndarray,
    r_scale: np.ndarray,
    r_fixed: np.ndarray,
) -> None: ...
def iou_cost(
    rows: np.ndarray,
    row_class: np.ndarray,
    boxes: np.ndarray,
    box_class: np.ndarray,
    cost: np.ndarray,
) -> None: ...
def match_stages(
    cost: np.ndarray,
    row_flags: np.ndarray,
    col_flags: np.ndarray,
    stage_rows: np.ndarray,
    stage_cols: np.ndarray,
    limits: np.ndarray,
    col_of_row: np.ndarray,
    row_of_col: np.ndarray,
) -> int: ...
def line_crossings(
    points: np.ndarray,
    heights: np.ndarray,
    ax: float,
    ay: float,
    bx: float,
    by: float,
    norm: float,
    hysteresis: float,
    slots: np.ndarray,
    last: np.ndarray,
    last_side: np.ndarray,
    sides: np.ndarray,
    crossed: np.ndarray,
) -> int: ...
def points_inside(
    points: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    yj: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    inside: np.ndarray,
) -> None: ...
def track_match(
    rows: np.ndarray,
    row_class: np.ndarray,
    life: np.ndarray,
    n: int,
    steps: float,
    q_scale: np.ndarray,
    q_fixed: np.ndarray,
    boxes: np.ndarray,
    box_class: np.ndarray,
    scores: np.ndarray,
    score_edges: np.ndarray,
    state_flags: np.ndarray,
    stage_rows: np.ndarray,
    stage_cols: np.ndarray,
    limits: np.ndarray,
    cost: np.ndarray,
    row_flags: np.ndarray,
    box_flags: np.ndarray,
    det_of: np.ndarray,
    box_of: np.ndarray,
) -> int: ...
def track_life(
    rows: np.ndarray,
    row_class: np.ndarray,
    life: np.ndarray,
    n: int,
    det_of: np.ndarray,
    box_of: np.ndarray,
    box_flags: np.ndarray,
    scores: np.ndarray,
    boxes: np.ndarray,
    box_class: np.ndarray,
    new_thresh: float,
    min_hits: int,
    lost_frames: int,
    r_scale: np.ndarray,
    r_fixed: np.ndarray,
    p0_scale: np.ndarray,
    p0_fixed: np.ndarray,
    counters: np.ndarray,
    free_slots: np.ndarray,
    ids: np.ndarray,
    slots: np.ndarray,
    ended: np.ndarray,
) -> tuple[int, int, int]: ...
def observe_frame(
    boxes: np.ndarray,
    slots: np.ndarray,
    lines: np.ndarray,
    zones: np.ndarray,
    edges: np.ndarray,
    watch: np.ndarray | None,
    hysteresis: float,
    last: np.ndarray,
    last_side: np.ndarray,
    inside: np.ndarray,
    seen_frame: np.ndarray,
    seen_t: np.ndarray,
    frame: int,
    t: float,
    events: np.ndarray,
) -> int: ...

class TrackArrays:
    def __init__(
        self,
        rows: np.ndarray,
        row_class: np.ndarray,
        life: np.ndarray,
        q_scale: np.ndarray,
        q_fixed: np.ndarray,
        score_edges: np.ndarray,
        state_flags: np.ndarray,
        stage_rows: np.ndarray,
        stage_cols: np.ndarray,
        limits: np.ndarray,
        cost: np.ndarray,
        row_flags: np.ndarray,
        box_flags: np.ndarray,
        det_of: np.ndarray,
        box_of: np.ndarray,
        r_scale: np.ndarray,
        r_fixed: np.ndarray,
        p0_scale: np.ndarray,
        p0_fixed: np.ndarray,
        counters: np.ndarray,
        free_slots: np.ndarray,
        ended: np.ndarray,
    ) -> None: ...
    def track_match(
        self, n: int, steps: float, boxes: np.ndarray, box_class: np.ndarray, scores: np.ndarray
    ) -> int: ...
    def track_life(
        self,
        n: int,
        boxes: np.ndarray,
        box_class: np.ndarray,
        scores: np.ndarray,
        new_thresh: float,
        min_hits: int,
        lost_frames: int,
        ids: np.ndarray,
        slots: np.ndarray,
    ) -> tuple[int, int, int]: ...

class ObserveArrays:
    def __init__(
        self,
        lines: np.ndarray,
        zones: np.ndarray,
        edges: np.ndarray,
        hysteresis: float,
        last: np.ndarray,
        last_side: np.ndarray,
        inside: np.ndarray,
        seen_frame: np.ndarray,
        seen_t: np.ndarray,
        events: np.ndarray,
    ) -> None: ...
    def observe_frame(
        self,
        boxes: np.ndarray,
        slots: np.ndarray,
        watch: np.ndarray | None,
        frame: int,
        t: float,
    ) -> int: ...
