"""Who exercises where, doing what: the people, rooms and workouts of the corpus.

Everything is drawn from a seeded ``random.Random``, so a session is fully determined by its
seed. Ranges are chosen to span what a clinic sees, not to match any one cohort.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Workout(StrEnum):
    STEADY_AEROBIC = "steady_aerobic"
    INTERVALS = "intervals"
    STRENGTH_SETS = "strength_sets"
    BALANCE_FLEXIBILITY = "balance_flexibility"


class Room(StrEnum):
    COOL = "cool"
    NEUTRAL = "neutral"
    HOT_HUMID = "hot_humid"


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    age: int
    sex: str
    height_m: float
    weight_kg: float
    fitness_met: float
    """Aerobic capacity (VO2max) in METs."""
    resting_hr: float
    max_hr: float
    heat_sensitive: bool
    """Impaired sweating (about half of people with MS sweat less: Davis et al. 2010)."""
    sweat_gain: float
    drift_bpm_per_c: float
    """Cardiovascular drift: extra heart rate per °C of core rise."""
    skin_bpm_per_c: float
    """Extra heart rate per °C of mean skin warming (skin blood flow competes with muscle)."""
    hr_tau_up_s: float
    hr_tau_down_s: float
    hr_noise_bpm: float
    core_offset_c: float
    skin_sensor_offset_c: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Environment:
    room: Room
    tdb: float
    rh: float
    v: float
    clo: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    seconds: int
    intensity: float
    """Fraction of the aerobic reserve (VO2max − rest); 0 = seated rest."""
    seated: bool = False


REST_MIN = 4
"""Seated rest at the start (the engine's baseline period is the first 2 min)."""


def draw_person(rng: random.Random, *, heat_sensitive: bool) -> Person:
    sex = rng.choice(("male", "female"))
    age = rng.randint(22, 72)
    height = rng.gauss(1.77 if sex == "male" else 1.64, 0.07)
    bmi = rng.uniform(19.5, 32.0)
    weight = bmi * height * height
    fitness = (10.5 if sex == "male" else 9.0) - 0.06 * (age - 25) + rng.gauss(0.0, 1.2)
    fitness = min(13.0, max(4.5, fitness))
    resting = min(92.0, max(48.0, rng.gauss(70.0 - 1.5 * (fitness - 9.0), 6.0)))
    max_hr = 208.0 - 0.7 * age + rng.gauss(0.0, 7.0)
    return Person(
        age=age,
        sex=sex,
        height_m=round(height, 3),
        weight_kg=round(weight, 1),
        fitness_met=round(fitness, 2),
        resting_hr=round(resting, 1),
        max_hr=round(max(max_hr, resting + 60.0), 1),
        heat_sensitive=heat_sensitive,
        sweat_gain=rng.uniform(0.25, 0.6) if heat_sensitive else rng.uniform(0.8, 1.2),
        drift_bpm_per_c=rng.uniform(10.0, 30.0),
        skin_bpm_per_c=rng.uniform(0.5, 3.0),
        hr_tau_up_s=rng.uniform(15.0, 40.0),
        hr_tau_down_s=rng.uniform(35.0, 80.0),
        hr_noise_bpm=rng.uniform(1.5, 4.0),
        core_offset_c=rng.gauss(0.0, 0.2),
        skin_sensor_offset_c=rng.gauss(0.0, 0.5),
    )


def draw_environment(rng: random.Random, room: Room) -> Environment:
    if room is Room.COOL:
        tdb, rh = rng.uniform(16.0, 20.5), rng.uniform(30.0, 50.0)
    elif room is Room.NEUTRAL:
        tdb, rh = rng.uniform(21.0, 25.0), rng.uniform(35.0, 55.0)
    else:
        tdb, rh = rng.uniform(28.0, 33.0), rng.uniform(55.0, 75.0)
    return Environment(
        room=room,
        tdb=round(tdb, 1),
        rh=round(rh, 0),
        v=round(rng.uniform(0.1, 0.5), 2),
        clo=round(rng.uniform(0.3, 0.55), 2),
    )


def draw_workout(rng: random.Random, workout: Workout) -> tuple[Segment, ...]:
    """The session's effort, second by second in segments (rest, warm-up, main, cool-down)."""
    segs: list[Segment] = [Segment(seconds=REST_MIN * 60, intensity=0.0, seated=True)]
    if workout is not Workout.BALANCE_FLEXIBILITY:
        segs.append(Segment(seconds=rng.randint(4, 7) * 60, intensity=rng.uniform(0.2, 0.35)))
    main_s = rng.randint(20, 40) * 60
    done = 0
    if workout is Workout.STEADY_AEROBIC:
        level = rng.uniform(0.3, 0.6)
        while done < main_s:
            n = min(main_s - done, 300)
            segs.append(Segment(seconds=n, intensity=max(0.3, level + rng.gauss(0.0, 0.04))))
            done += n
    elif workout is Workout.INTERVALS:
        work_s, easy_s = rng.choice(((60, 60), (120, 120), (180, 120), (30, 30), (240, 180)))
        hard, easy = rng.uniform(0.55, 0.85), rng.uniform(0.1, 0.3)
        while done < main_s:
            segs.append(Segment(seconds=work_s, intensity=hard))
            segs.append(Segment(seconds=easy_s, intensity=easy))
            done += work_s + easy_s
    elif workout is Workout.STRENGTH_SETS:
        while done < main_s:
            set_s = rng.randint(30, 60)
            rest_s = rng.randint(60, 150)
            segs.append(Segment(seconds=set_s, intensity=rng.uniform(0.35, 0.65)))
            segs.append(Segment(seconds=rest_s, intensity=0.1))
            done += set_s + rest_s
    else:
        while done < main_s:
            n = rng.randint(2, 5) * 60
            segs.append(Segment(seconds=n, intensity=rng.uniform(0.03, 0.2)))
            done += n
    segs.append(Segment(seconds=rng.randint(3, 6) * 60, intensity=0.15))
    segs.append(Segment(seconds=rng.randint(5, 10) * 60, intensity=0.0, seated=True))
    return tuple(segs)
