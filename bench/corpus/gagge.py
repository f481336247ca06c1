"""The two-node model of Gagge et al. (1986), stepped one minute at a time with its state kept.

pythermalcomfort's ``two_nodes_gagge`` runs the model for a fixed hour under constant
conditions from the neutral state and returns only the end; a workout changes its effort every
minute. This class is the loop body of pythermalcomfort 4.8.0's ``_gagge_two_nodes_optimized``
(MIT licence, ASHRAE 55-2020 constants) with the body's state (core, skin, skin blood flow,
evaporation, skin mass fraction) carried from one minute to the next, plus one change: the
regulatory sweating coefficient is multiplied by ``sweat_gain`` (impaired sweating < 1).
``tests/test_corpus.py`` checks that under constant conditions it reproduces
pythermalcomfort's own result.
"""

from __future__ import annotations

import math

MET_W_M2 = 58.2
SBC = 5.6697e-8
C_SW = 170.0
C_DIL = 120.0
C_STR = 0.5
T_SKIN_NEUTRAL = 33.7
T_CORE_NEUTRAL = 36.8
ALFA_NEUTRAL = 0.1
T_BODY_NEUTRAL = ALFA_NEUTRAL * T_SKIN_NEUTRAL + (1 - ALFA_NEUTRAL) * T_CORE_NEUTRAL
SKIN_BLOOD_FLOW_NEUTRAL = 6.3


def p_sat_torr(t_c: float) -> float:
    return math.exp(18.6686 - 4030.183 / (t_c + 235.0))


class GaggeTwoNode:
    """One person in one room; :meth:`minute` advances one minute at a metabolic rate."""

    def __init__(
        self,
        *,
        tdb: float,
        tr: float,
        v: float,
        rh: float,
        clo: float,
        body_weight: float = 70.0,
        body_surface_area: float = 1.8258,
        standing: bool = True,
        sweat_gain: float = 1.0,
        max_skin_blood_flow: float = 90.0,
        max_sweating: float = 500.0,
    ) -> None:
        self.tdb, self.tr, self.clo = tdb, tr, clo
        self.air_speed = max(v, 0.1)
        self.vapor_pressure = rh * p_sat_torr(tdb) / 100.0
        self.weight = body_weight
        self.bsa = body_surface_area
        self.standing = standing
        self.c_sw = C_SW * sweat_gain
        self.max_sbf = max_skin_blood_flow
        self.max_sweating = max_sweating
        self.t_skin = T_SKIN_NEUTRAL
        self.t_core = T_CORE_NEUTRAL
        self.m_bl = SKIN_BLOOD_FLOW_NEUTRAL
        self.alfa = ALFA_NEUTRAL
        self.e_skin: float | None = None
        self.r_clo = 0.155 * clo
        self.f_a_cl = 1.0 + 0.15 * clo
        self.lr = 2.2
        self.i_cl = 0.45 if clo > 0 else 1.0
        w_max = 0.38 * self.air_speed**-0.29
        if clo > 0:
            w_max = 0.59 * self.air_speed**-0.08
        self.w_max = w_max

    def minute(self, met: float, wme: float = 0.0) -> None:
        """One minute at ``met`` (the model's Euler step is one minute)."""
        if self.e_skin is None:
            self.e_skin = 0.1 * met
        m = met * MET_W_M2
        h_cc = max(3.0, 8.600001 * self.air_speed**0.53)
        if met > 0.85:
            h_cc = max(h_cc, 5.66 * (met - 0.85) ** 0.39)
        h_r = 4.7
        h_t = h_r + h_cc
        r_a = 1.0 / (self.f_a_cl * h_t)
        t_op = (h_r * self.tr + h_cc * self.tdb) / h_t
        q_res = 0.0023 * m * (44.0 - self.vapor_pressure)
        c_res = 0.0014 * m * (34.0 - self.tdb)
        t_skin, t_core, r_clo = self.t_skin, self.t_core, self.r_clo
        t_cl = (r_a * t_skin + r_clo * t_op) / (r_a + r_clo)
        factor = 0.73 if self.standing else 0.7
        for _ in range(150):
            h_r = 4.0 * 0.95 * SBC * ((t_cl + self.tr) / 2.0 + 273.15) ** 3.0 * factor
            h_t = h_r + h_cc
            r_a = 1.0 / (self.f_a_cl * h_t)
            t_op = (h_r * self.tr + h_cc * self.tdb) / h_t
            t_cl_new = (r_a * t_skin + r_clo * t_op) / (r_a + r_clo)
            done = abs(t_cl_new - t_cl) <= 0.01
            t_cl = t_cl_new
            if done:
                break
        q_sensible = (t_skin - t_op) / (r_a + r_clo)
        hf_cs = (t_core - t_skin) * (5.28 + 1.163 * self.m_bl)
        s_core = m - hf_cs - q_res - c_res - wme
        s_skin = hf_cs - q_sensible - self.e_skin
        tc_sk = 0.97 * self.alfa * self.weight
        tc_cr = 0.97 * (1 - self.alfa) * self.weight
        t_skin += s_skin * self.bsa / (tc_sk * 60.0)
        t_core += s_core * self.bsa / (tc_cr * 60.0)
        t_body = self.alfa * t_skin + (1 - self.alfa) * t_core
        sk_sig = t_skin - T_SKIN_NEUTRAL
        warm_sk = max(sk_sig, 0.0)
        colds = max(-sk_sig, 0.0)
        c_warm = max(t_core - T_CORE_NEUTRAL, 0.0)
        warm_b = max(t_body - T_BODY_NEUTRAL, 0.0)
        m_bl = (SKIN_BLOOD_FLOW_NEUTRAL + C_DIL * c_warm) / (1 + C_STR * colds)
        m_bl = min(max(m_bl, 0.5), self.max_sbf)
        m_rsw = min(self.c_sw * warm_b * math.exp(warm_sk / 10.7), self.max_sweating)
        e_rsw = 0.68 * m_rsw
        r_ea = 1.0 / (self.lr * self.f_a_cl * h_cc)
        r_ecl = r_clo / (self.lr * self.i_cl)
        e_max = (p_sat_torr(t_skin) - self.vapor_pressure) / (r_ea + r_ecl)
        if e_max == 0:
            e_max = 0.001
        p_rsw = e_rsw / e_max
        w = 0.06 + 0.94 * p_rsw
        e_diff = w * e_max - e_rsw
        if w > self.w_max:
            p_rsw = (self.w_max - 0.06) / 0.94
            e_rsw = p_rsw * e_max
            e_diff = 0.06 * (1.0 - p_rsw) * e_max
        if e_max < 0:
            e_diff = 0.0
            e_rsw = 0.0
        self.e_skin = e_rsw + e_diff
        self.t_skin, self.t_core, self.m_bl = t_skin, t_core, m_bl
        self.alfa = 0.0417737 + 0.7451833 / (m_bl + 0.585417)
